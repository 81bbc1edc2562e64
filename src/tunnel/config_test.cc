#include "tunnel/config.h"

#include <gtest/gtest.h>

#include "common/config_util.h"

namespace airlock::tunnel {
namespace {

TEST(TunnelConfig, Servers) {
  auto c = parse_tunnel_config(R"(
name: my-sales-tunnel
servers:
  - name: sales
    url: tcp://private-mcp:8080
    credentials: [prod-sales-token]
  - name: docs
    url: https://docs.internal/mcp
  - name: local
    url: "stdio:/usr/bin/my-server --flag"
)", "tunnel.yaml");
  EXPECT_EQ(c.name, "my-sales-tunnel");
  ASSERT_EQ(c.servers.size(), 3u);
  EXPECT_EQ(c.servers[0].credentials, std::vector<std::string>{"prod-sales-token"});
  EXPECT_EQ(c.servers[2].url, "stdio:/usr/bin/my-server --flag");
}

void expect_error(const std::string& yaml, const std::string& fragment) {
  try {
    parse_tunnel_config(yaml, "tunnel.yaml");
    FAIL() << "accepted: " << yaml;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(TunnelConfig, ErrorsNameTheKey) {
  expect_error("servers:\n  - name: a\n    urll: tcp://x:1\n", "unknown key 'servers[0].urll'");
  expect_error("servers:\n  - name: a\n", "servers[0].url is required");
  expect_error("servers:\n  - name: a\n    url: ftp://x\n", "scheme 'ftp'");
  expect_error("servers:\n  - name: a\n    url: tcp://x\n", "need a port");
  expect_error("servers:\n  - name: a\n    url: https://u:p@x/mcp\n", "must not carry credentials");
  expect_error("servers:\n  - {name: a, url: 'tcp://x:1'}\n  - {name: a, url: 'tcp://y:1'}\n",
               "servers[1].name 'a' is used by another server");
  expect_error("servers: {}\n", "servers must be a list");
  expect_error("servers:\n  - name: a\n    url: 'stdio:'\n", "needs a command");
  expect_error("bogus: 1\n", "unknown key 'bogus'");
}

}  // namespace
}  // namespace airlock::tunnel
