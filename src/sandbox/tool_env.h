// What every sandboxed tool process gets from sandbox.yaml, shared by `sandbox-agent run` and
// the connected agent's sessions: its whole environment (nothing of the agent's leaks in;
// credentials as the environment variables sandbox.yaml names), and the egress proxy that
// applies `allowed_outbound`. Start-up code on the caller's thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/secrets.h"
#include "sandbox/config.h"
#include "sandbox/egress_proxy.h"

namespace airlock::sandbox {

// Where the egress proxy listens inside every run (its own network namespace: no conflicts).
inline constexpr uint16_t kProxyPort = 3128;

// The tool's environment: PATH, HOME=/workspace, HOSTNAME, TMPDIR, LANG, sandbox.env, every
// credential's env_var with its value from `secrets`, and — when `proxy` — the proxy variables,
// and when the proxy holds host-bound credentials, the variables that make common clients
// trust its CA (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, NODE_EXTRA_CA_CERTS), unless
// sandbox.env sets them. False with `error` naming the credential that is not loaded.
bool tool_environment(const SandboxConfig& config, const secrets::SecretSet* secrets,
                      const EgressProxy* proxy, std::vector<std::string>& env, std::string& error);

// The egress proxy for one run, or null when nothing is allowed out (the run's network
// namespace then has nothing but its loopback). Denials are logged with `run_id`. `injector`
// adds sandbox.http_credentials (http_credentials.h); null when there are none.
std::unique_ptr<EgressProxy> make_egress_proxy(const SandboxConfig& config,
                                               const std::string& run_id,
                                               std::shared_ptr<CredentialInjector> injector);

// Overwrites the values (secrets among them) before the strings are freed.
void wipe(std::vector<std::string>& env);

}  // namespace airlock::sandbox
