// SandboxConfig: sandbox-agent's sandbox.yaml — what a sandboxed run is held to: its image,
// resources, network allowlist and credentials. Parsed once at start-up, validated, then shared
// read-only. The `sandbox:` block is the shape users already have (docs/configuration.md);
// `secrets:` says where credential values come from, as in tunnel.yaml.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/secrets.h"
#include "sandbox/allowlist.h"
#include "sandbox/image.h"
#include "sandbox/toolset.h"

namespace airlock::sandbox {

struct Resources {
  // CPU time per wall second, in thousandths of a CPU ("2" = 2000, "500m" = 500). 0: no limit.
  uint64_t cpu_millis = 0;
  // Memory (and swap: none) in bytes. 0: no limit.
  uint64_t memory_bytes = 0;
  // Processes and threads alive at once in the run.
  uint64_t pids = 256;
  // A run still going after this is killed as a whole (every process in its cgroup).
  std::chrono::milliseconds wall_time{300'000};
  // Bytes kept per output stream (stdout, stderr); the rest is dropped behind a marker.
  uint64_t output_limit = 10 * 1024 * 1024;
  // Size of the run's private /tmp (tmpfs; its pages count against `memory`).
  uint64_t tmp_size = 256 * 1024 * 1024;
};

struct Credential {
  std::string secret;   // a name from `secrets:`
  std::string env_var;  // set to the secret's value in the tool process
};

// A header the egress proxy adds to the sandbox's requests for matching hosts
// (sandbox.http_credentials, http_credentials.h): its value never enters the sandbox.
struct HttpCredential {
  std::string host;     // as written: "api.example.com" or "*.example.com", either with ":PORT"
  AllowEntry target;    // `host` parsed: a name entry; port 0 for any port
  std::string header;   // the field name, e.g. "Authorization"
  std::string value;    // a template with ${secret:NAME} references: "Bearer ${secret:api-key}"
  std::string ca_file;  // PEM CAs the upstream's certificate must chain to; empty: the system's
};

struct SandboxConfig {
  // Hostname inside the sandbox and the name in logs; [A-Za-z0-9-], 1-63.
  std::string name = "sandbox";
  // "host" (the host's system directories, read-only), a directory holding an unpacked root
  // filesystem, or an image reference resolved by the image store.
  std::string image = "host";
  // For an image named with its registry: when to pull it, which variant of a multi-platform
  // image, and the secret (a .dockerconfigjson document) holding the registry credentials.
  PullPolicy pull = PullPolicy::kIfMissing;
  std::string platform = "linux/amd64";
  std::string image_pull_secret;
  // `registries:` — a CA, a mirror or plain HTTP (loopback only) per registry host.
  std::vector<RegistrySettings> registries;
  Resources resources;
  // Egress allowlist: "host", "*.domain", either with ":port"; IP literals and CIDRs.
  std::vector<std::string> allowed_outbound;
  std::vector<Credential> credentials;
  // Headers added by the egress proxy, in file order; for each header name the first entry
  // whose host matches applies.
  std::vector<HttpCredential> http_credentials;
  std::vector<secrets::SourceSpec> secrets;
  // Extra environment for the tool (values are literal; credentials go in `credentials`).
  std::vector<std::pair<std::string, std::string>> env;

  // The connected agent (`sandbox-agent start`); `run` ignores these.
  // Agent sessions served at once, each in a sandbox of its own; one more gets "busy".
  uint32_t max_sessions = 16;
  // A session without a call for this long ends, and its sandbox (workspace, shell) with it.
  std::chrono::milliseconds session_idle_timeout{30 * 60 * 1000};
  // Sandboxes kept started ahead, so that a new session does not wait for one.
  uint32_t warm_pool = 2;
  // Tools of the operator's own, beside the agent toolset.
  std::vector<CustomTool> custom_tools;
};

// Kubernetes quantities. CPU: "2", "0.5", "500m". Memory: plain bytes, decimal suffixes
// k M G T P E, binary Ki Mi Gi Ti Pi Ei, fractions ("1.5Gi"), exponent ("1e9"). nullopt on
// anything else, zero included for neither (a zero limit is written by leaving the key out).
std::optional<uint64_t> parse_cpu_quantity(std::string_view text);
std::optional<uint64_t> parse_memory_quantity(std::string_view text);
// "2" / "500m", "4Gi" / "512Mi" — for logs and error messages.
std::string format_cpu(uint64_t millis);
std::string format_bytes(uint64_t bytes);

// Throws ConfigError naming the key path (e.g. "sandbox.resources.memory") on any problem,
// unknown keys included.
SandboxConfig parse_sandbox_config(const std::string& yaml_text, const std::string& origin);
SandboxConfig load_sandbox_config(const std::string& path);

}  // namespace airlock::sandbox
