#include "tunnel/config.h"

#include <gtest/gtest.h>

#include "common/config_util.h"

namespace airlock::tunnel {
namespace {

void expect_error(const std::string& yaml, const std::string& fragment) {
  try {
    parse_tunnel_config(yaml, "tunnel.yaml");
    FAIL() << "accepted: " << yaml;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(TunnelConfig, Servers) {
  auto c = parse_tunnel_config(R"(
name: my-sales-tunnel
secrets:
  - name: prod-sales-token
    from: env:SALES_TOKEN
  - from: dir:/var/run/secrets/airlock
servers:
  - name: sales
    url: tcp://private-mcp:8080
  - name: docs
    url: https://docs.internal/mcp
    headers:
      Authorization: "Bearer ${secret:prod-sales-token}"
      X-Tenant: acme
  - name: local
    url: "stdio:/usr/bin/my-server --flag"
    env:
      API_KEY: "${secret:local-key}"
      MODE: plain
  - name: crm
    url: https://crm.internal/mcp
    headers: {Authorization: "Bearer ${agent_secret}"}
    agent_credentials: ["crm-*"]
    inventory_credential: crm-inventory
)", "tunnel.yaml");
  EXPECT_EQ(c.name, "my-sales-tunnel");
  ASSERT_EQ(c.secrets.size(), 2u);
  EXPECT_EQ(c.secrets[0].name, "prod-sales-token");
  EXPECT_EQ(c.secrets[1].from, "dir:/var/run/secrets/airlock");
  ASSERT_EQ(c.servers.size(), 4u);
  EXPECT_TRUE(c.servers[0].credentials.empty());
  EXPECT_EQ(c.servers[1].credentials, std::vector<std::string>{"prod-sales-token"});
  ASSERT_EQ(c.servers[1].headers.size(), 2u);
  EXPECT_EQ(c.servers[1].headers[0].second, "Bearer ${secret:prod-sales-token}");
  EXPECT_EQ(c.servers[2].url, "stdio:/usr/bin/my-server --flag");
  EXPECT_EQ(c.servers[2].credentials, std::vector<std::string>{"local-key"});
  EXPECT_TRUE(c.servers[3].uses_agent_secret);
  EXPECT_EQ(c.servers[3].credentials, std::vector<std::string>{"crm-inventory"});
}

TEST(TunnelConfig, CredentialsGoOnlyWhereTheyBelong) {
  expect_error("servers:\n  - name: a\n    url: tcp://x:1\n    headers: {Authorization: x}\n",
               "no headers or environment to carry a credential");
  expect_error("servers:\n  - name: a\n    url: 'tcp://x:1'\n    env: {K: v}\n",
               "env applies only to stdio");
  expect_error("servers:\n  - name: a\n    url: 'https://x/mcp?key=${secret:k1}'\n",
               "must not carry a secret");
  expect_error("servers:\n  - name: a\n    url: 'stdio:srv'\n    args: ['--key=${secret:k1}']\n",
               "args must not carry a secret");
  expect_error("servers:\n  - name: a\n    url: 'stdio:srv'\n    headers: {A: b}\n",
               "through 'env'");
  expect_error("servers:\n  - name: a\n    url: https://x/\n    headers: {Host: evil}\n",
               "mcp-tunnel sets Host itself");
  expect_error("servers:\n  - name: a\n    url: https://x/\n    headers: {'Bad Name': v}\n",
               "not a valid HTTP header name");
  expect_error("servers:\n  - name: a\n    url: https://x/\n    headers: {A: '${env:HOME}'}\n",
               "'${env:HOME}' is not a reference");
  expect_error("servers:\n  - name: a\n    url: https://x/\n    headers: {A: '${secret:x'}\n",
               "unterminated");
  expect_error("servers:\n  - name: a\n    url: https://x/\n    headers: {A: '${agent_secret}'}\n",
               "has no 'agent_credentials'");
  expect_error("servers:\n  - name: a\n    url: https://x/\n    agent_credentials: [x]\n",
               "apply only to a server whose headers or env use ${agent_secret}");
  expect_error("secrets:\n  - name: a\n    from: vault:x\n", "must start with env:, file: or dir:");
  expect_error("secrets:\n  - from: file:/x\n", "secrets[0].name is required");
  expect_error("secrets:\n  - {name: a, from: 'file:relative'}\n", "absolute path");
  expect_error("secrets:\n  - {name: a, from: 'dir:/x'}\n", "does not apply to dir:");
  expect_error("secrets:\n  - {name: a, from: 'env:A'}\n  - {name: a, from: 'env:B'}\n",
               "secrets[1].name 'a' is defined twice");
}

TEST(TunnelConfig, ErrorsNameTheKey) {
  expect_error("servers:\n  - name: a\n    urll: tcp://x:1\n", "unknown key 'servers[0].urll'");
  expect_error("servers:\n  - name: a\n", "servers[0].url is required");
  expect_error("servers:\n  - name: a\n    url: ftp://x\n", "scheme 'ftp'");
  expect_error("servers:\n  - name: a\n    url: tcp://x\n", "need a port");
  expect_error("servers:\n  - name: a\n    url: https://u:p@x/mcp\n", "must not carry credentials");
  expect_error("servers:\n  - name: a\n    url: tcp://x:1\n    credentials: [a]\n",
               "unknown key 'servers[0].credentials'");
  expect_error("servers:\n  - {name: a, url: 'tcp://x:1'}\n  - {name: a, url: 'tcp://y:1'}\n",
               "servers[1].name 'a' is used by another server");
  expect_error("servers: {}\n", "servers must be a list");
  expect_error("servers:\n  - name: a\n    url: 'stdio:'\n", "needs a command");
  expect_error("bogus: 1\n", "unknown key 'bogus'");
  expect_error("servers:\n  - {name: a, url: 'tcp://x:1', max_processes: 2}\n",
               "servers[0].max_processes applies to stdio: servers only");
  expect_error("servers:\n  - {name: a, url: 'stdio:x', max_processes: many}\n",
               "servers[0].max_processes");
}

TEST(TunnelConfig, MaxProcessesDefaultsTo16) {
  auto c = parse_tunnel_config("servers:\n  - {name: a, url: 'stdio:x'}\n  - {name: b, url: "
                               "'stdio:y', max_processes: 0}\n",
                               "tunnel.yaml");
  EXPECT_EQ(c.servers[0].max_processes, 16u);
  EXPECT_EQ(c.servers[1].max_processes, 0u);
}

}  // namespace
}  // namespace airlock::tunnel
