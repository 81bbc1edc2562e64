// `sandbox-agent run`: one command, isolated per sandbox.yaml, from load to exit status. The
// connected agent (which takes tool calls from airlockd) builds on the same pieces.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/secrets.h"
#include "sandbox/config.h"
#include "sandbox/tool_env.h"

namespace CLI {
class App;
}

namespace airlock::sandbox {


struct RunCommandOptions {
  std::string config_path;
  std::string workspace;      // bound at /workspace; empty: a private tmpfs
  std::string report_path;    // when set, a JSON summary of the run is written there
  std::string image_store;    // where layered images are unpacked and references resolved
  std::vector<std::string> argv;
  // Makes what adds sandbox.http_credentials (make_credential_injector, which needs TLS).
  // sandbox-agent, which links no TLS library so that it starts fast, leaves it unset and
  // gives `hand_over` instead: a run whose config has http_credentials is handed to
  // sandbox-agent-connected, which sets it.
  CredentialInjectorFactory credential_injector = nullptr;
  std::function<int()> hand_over;
};

// `run`'s flags, for both programs that serve it; `log_level` receives --log-level.
CLI::App* add_run_command(CLI::App& app, RunCommandOptions& options, std::string& log_level);

// Returns the process exit status: the tool's, or 124 (wall time), 125 (set-up failed),
// 126/127 (not executable / not found), 2 (bad config or secrets).
int run_command(const RunCommandOptions& options);

// How sandbox.yaml says to pull its image: policy, platform, `registries:`, and the registry
// credentials from the image_pull_secret's value in `set`. Throws ConfigError when that secret is
// not loaded or is not a .dockerconfigjson document.
ImagePullOptions pull_options_for(const SandboxConfig& config, const secrets::SecretSet* set);

// `sandbox-agent image pull REF [--config sandbox.yaml] [--platform P]`: pulls, records, prints
// "REF DIGEST". Exit status 0, 1 (the pull failed) or 2 (bad config).
int image_pull_command(const std::string& reference, const std::string& config_path,
                       const std::string& platform, const std::string& store);

// `sandbox-agent image import SOURCE --tag REF` and `image list`: exit status 0, or 1 with the
// reason on stderr.
int image_import_command(const std::string& source, const std::string& tag,
                         const std::string& store);
int image_list_command(const std::string& store);

// `sandbox-agent check --config FILE`: everything `run` and `start` check in sandbox.yaml
// before they read a secret or build a sandbox (keys, quantities, allowlist, credentials
// against `secrets:`, custom tools' schemas). Prints what the file describes and returns 0, or
// prints the error and returns 2. Reads no secret.
int check_config_command(const std::string& path);

}  // namespace airlock::sandbox
