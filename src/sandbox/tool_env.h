// What every sandboxed tool process gets from sandbox.yaml, shared by `sandbox-agent run` and
// the connected agent's sessions: its whole environment (nothing of the agent's leaks in;
// credentials as the environment variables sandbox.yaml names), the egress proxy that applies
// `allowed_outbound`, and what host-bound credentials need. Start-up code on the caller's
// thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/secrets.h"
#include "sandbox/config.h"
#include "sandbox/egress_proxy.h"
#include "sandbox/sandbox.h"

namespace airlock::sandbox {

// Where the egress proxy listens inside every run (its own network namespace: no conflicts).
inline constexpr uint16_t kProxyPort = 3128;

// Makes what adds sandbox.http_credentials (make_credential_injector, which needs TLS).
using CredentialInjectorFactory = std::shared_ptr<CredentialInjector> (*)(
    const SandboxConfig&, std::shared_ptr<const secrets::SecretSet>, const std::string& run_id,
    std::string& error);

// Everything a sandbox gets from sandbox.yaml besides its limits, for the run or session whose
// `spec` (run_id set) is being filled:
//  - `proxy`: the egress proxy applying `allowed_outbound` (null when nothing is allowed out:
//    the run's network namespace then has nothing but its loopback), denials logged with the
//    run id, and — for sandbox.http_credentials — the injector `make_injector` makes;
//  - spec.env: PATH, HOME=/workspace, HOSTNAME, TMPDIR, LANG, sandbox.env, every credential's
//    env_var with its value from `secrets` (nothing of the agent's leaks in), the proxy
//    variables, and with host-bound credentials the variables that make common clients trust
//    the proxy's CA (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, NODE_EXTRA_CA_CERTS)
//    unless sandbox.env sets them;
//  - with host-bound credentials, spec.root.extra_ca_pem and spec.clean_init.
// False with `error` (a credential not loaded, no factory, no sandbox-agent-init). The caller
// hands the proxy its socket (spec.on_proxy_socket).
bool prepare_sandbox(const SandboxConfig& config,
                     std::shared_ptr<const secrets::SecretSet> secrets,
                     CredentialInjectorFactory make_injector, RunSpec& spec,
                     std::unique_ptr<EgressProxy>& proxy, std::string& error);

// Overwrites the values (secrets among them) before the strings are freed.
void wipe(std::vector<std::string>& env);

}  // namespace airlock::sandbox
