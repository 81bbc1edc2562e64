#include "sandbox/http_credentials.h"

#include <gtest/gtest.h>

#include "common/config_util.h"

namespace airlock::sandbox {
namespace {

HttpCredential entry(const std::string& host, const std::string& header, const std::string& value) {
  std::string error;
  HttpCredential c;
  c.host = host;
  c.target = *parse_allow_entry(host, error);
  c.header = header;
  c.value = value;
  return c;
}

TEST(HttpCredentials, TheFirstMatchingEntryPerHeaderApplies) {
  const std::vector<HttpCredential> all = {
      entry("api.internal.test", "Authorization", "exact"),
      entry("*.internal.test", "authorization", "wildcard"),
      entry("*.internal.test", "X-Org", "org"),
      entry("billing.internal.test:8443", "X-Billing", "billing"),
  };
  auto values = [&](std::string_view host, uint16_t port) {
    std::string out;
    for (const auto* c : credentials_for(all, host, port)) out += c->header + "=" + c->value + ";";
    return out;
  };
  EXPECT_EQ(values("api.internal.test", 443), "Authorization=exact;X-Org=org;");
  EXPECT_EQ(values("a.b.internal.test", 443), "authorization=wildcard;X-Org=org;");
  EXPECT_EQ(values("billing.internal.test", 8443), "authorization=wildcard;X-Org=org;X-Billing=billing;");
  EXPECT_EQ(values("billing.internal.test", 443), "authorization=wildcard;X-Org=org;");
  // Not the apex of a wildcard, not a look-alike, not an address.
  EXPECT_EQ(values("internal.test", 443), "");
  EXPECT_EQ(values("api.internal.test.evil.test", 443), "");
  EXPECT_EQ(values("evilinternal.test", 443), "");
  EXPECT_EQ(values("127.0.0.2", 443), "");
}

TEST(HttpCredentials, AnInjectorNeedsItsSecretsAndNothingWithoutEntries) {
  const std::string yaml =
      "secrets:\n  - {name: k, from: env:AIRLOCK_TEST_UNSET_VARIABLE_FOR_HC}\n"
      "sandbox:\n  network:\n    allowed_outbound: ['*.internal.test']\n"
      "  http_credentials:\n    - {host: '*.internal.test', header: Authorization, "
      "value: 'Bearer ${secret:k}'}\n";
  const SandboxConfig config = parse_sandbox_config(yaml, "sandbox.yaml");
  std::string error;
  EXPECT_EQ(make_credential_injector(config, nullptr, "run-1", error), nullptr);
  EXPECT_NE(error.find("'*.internal.test'"), std::string::npos) << error;
  error.clear();
  EXPECT_EQ(make_credential_injector(SandboxConfig{}, nullptr, "run-2", error), nullptr);
  EXPECT_EQ(error, "");
}

}  // namespace
}  // namespace airlock::sandbox
