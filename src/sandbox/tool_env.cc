#include "sandbox/tool_env.h"

#include "sandbox/steps.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace airlock::sandbox {

namespace {

bool tool_environment(const SandboxConfig& config, const secrets::SecretSet* secrets,
                      const EgressProxy* proxy, std::vector<std::string>& env, std::string& error) {
  env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/workspace",
         "HOSTNAME=" + config.name, "TMPDIR=/tmp", "LANG=C.UTF-8"};
  for (const auto& [k, v] : config.env) {
    std::erase_if(env, [&](const std::string& e) { return e.rfind(k + "=", 0) == 0; });
    env.push_back(k + "=" + v);
  }
  for (const auto& c : config.credentials) {
    const secrets::SecretValue* value = secrets ? secrets->find(c.secret) : nullptr;
    if (!value) {
      error = "credential '" + c.secret + "' (for " + c.env_var + ") is not loaded; check 'secrets:'";
      wipe(env);
      return false;
    }
    env.push_back(c.env_var + "=" + std::string(value->view()));
  }
  if (proxy) {
    const std::string url = "http://127.0.0.1:" + std::to_string(kProxyPort);
    for (const char* var :
         {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"}) {
      env.push_back(std::string(var) + "=" + url);
    }
    if (!proxy->ca_certificate_pem().empty()) {
      const auto set_unless_given = [&](const char* var, const char* value) {
        const bool given = std::any_of(config.env.begin(), config.env.end(),
                                       [&](const auto& kv) { return kv.first == var; });
        if (!given) env.push_back(std::string(var) + "=" + value);
      };
      for (const char* var : {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}) {
        set_unless_given(var, kSandboxCaBundle);
      }
      set_unless_given("NODE_EXTRA_CA_CERTS", kSandboxCaFile);
    }
  }
  return true;
}

std::unique_ptr<EgressProxy> make_egress_proxy(const SandboxConfig& config,
                                               const std::string& run_id,
                                               std::shared_ptr<CredentialInjector> injector) {
  if (config.allowed_outbound.empty()) return nullptr;
  EgressOptions eo;
  eo.injector = std::move(injector);
  eo.allowlist = Allowlist(config.allowed_outbound);
  eo.host_addresses = local_addresses;
  eo.proxy_port = kProxyPort;
  eo.on_denied = [run_id](const std::string& host, const std::string& reason) {
    spdlog::warn("run {}: egress denied{}: {}", run_id, host.empty() ? "" : " for '" + host + "'",
                 reason);
  };
  return std::make_unique<EgressProxy>(std::move(eo));
}

}  // namespace

bool prepare_sandbox(const SandboxConfig& config,
                     std::shared_ptr<const secrets::SecretSet> secrets,
                     CredentialInjectorFactory make_injector, RunSpec& spec,
                     std::unique_ptr<EgressProxy>& proxy, std::string& error) {
  std::shared_ptr<CredentialInjector> injector;
  if (!config.http_credentials.empty()) {  // allowed_outbound is not empty then (config.cc)
    if (!make_injector) {
      error = "sandbox.http_credentials need sandbox-agent-connected, installed next to "
              "sandbox-agent";
      return false;
    }
    injector = make_injector(config, secrets, spec.run_id, error);
    if (!injector) return false;
    spec.root.extra_ca_pem = injector->ca_certificate_pem();
    spec.clean_init = clean_init_beside_self(error);
    if (spec.clean_init.empty()) return false;
  }
  proxy = make_egress_proxy(config, spec.run_id, std::move(injector));
  return tool_environment(config, secrets.get(), proxy.get(), spec.env, error);
}

void wipe(std::vector<std::string>& env) {
  for (auto& e : env) std::fill(e.begin(), e.end(), '\0');
}

}  // namespace airlock::sandbox
