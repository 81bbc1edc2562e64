// TunnelConfig: mcp-tunnel's tunnel.yaml — the private MCP servers this tunnel may reach.
// Parsed once at start-up, validated, then shared read-only. Reference: docs/configuration.md.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/secrets.h"

namespace airlock::tunnel {

struct UpstreamServer {
  std::string name;  // how bindings refer to it; [A-Za-z0-9_.-]
  // tcp://HOST:PORT (newline-delimited JSON-RPC), http(s)://HOST[:PORT]/PATH (Streamable
  // HTTP) or stdio:COMMAND. Never carries credentials itself.
  std::string url;
  // Names of the secrets this server's templates refer to (computed from `headers` and
  // `env`, plus inventory_credential). Only names are ever reported to airlockd.
  std::vector<std::string> credentials;

  // http(s): extra request headers, values templated with ${secret:NAME} / ${agent_secret}.
  std::vector<std::pair<std::string, std::string>> headers;
  // ${agent_secret}: the credential airlockd's binding chose for the calling agent. Allowed
  // only with `agent_credentials`, the globs such a credential must match (so that airlockd
  // cannot point a server at an unrelated secret).
  bool uses_agent_secret = false;
  std::vector<std::string> agent_credentials;
  // The credential the tunnel's own inventory session uses for ${agent_secret}; without it
  // the inventory session leaves out whatever refers to ${agent_secret}.
  std::string inventory_credential;

  // stdio: the program and its arguments: the words after "stdio:" (split on spaces), then
  // `args`. Environment: mcp-tunnel's own (minus env: secrets, which it removes at load)
  // plus `env`, whose values may be templates; working directory `cwd` (default: ours).
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  std::string cwd;
  // stdio: processes of this server at once (one per agent session; 0: no limit). A session
  // that needs one more ends the least recently used session's first.
  size_t max_processes = 16;
  // https: trust only this CA (PEM) instead of the system store. Verification is always on.
  std::string ca_file;
  // Bound on spawning / dialing / initializing the upstream session.
  std::chrono::milliseconds connect_timeout{10000};
  // Bound on one request when airlockd gives none (airlockd normally sets the deadline).
  std::chrono::milliseconds request_timeout{60000};
  // Largest single JSON-RPC message accepted from the server.
  size_t max_message = 4 * 1024 * 1024;
};

struct TunnelConfig {
  std::string name;  // optional; the token already names the tunnel
  std::vector<secrets::SourceSpec> secrets;
  std::vector<UpstreamServer> servers;
};

// Throws ConfigError naming the key path (e.g. "servers[1].url") on any problem, including
// unknown keys.
TunnelConfig parse_tunnel_config(const std::string& yaml_text, const std::string& origin);
TunnelConfig load_tunnel_config(const std::string& path);

}  // namespace airlock::tunnel
