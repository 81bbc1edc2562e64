#include "controlplane/config.h"

#include <gtest/gtest.h>

#include "common/config_util.h"

namespace airlock::controlplane {
namespace {

TEST(AirlockdConfig, FullExample) {
  auto c = parse_airlockd_config(R"(
listen: "0.0.0.0:9443"
state_dir: /var/lib/airlockd
tls:
  hostnames: [airlock.example.com, 10.0.0.5]
connectors:
  heartbeat_interval: 5s
  dead_peer_timeout: 20s
  drain_timeout: 3s
  max_streams: 2048
  initial_window: 512KiB
  max_frame_payload: 32KiB
max_request_body: 8Mi
log_level: debug
)", "airlockd.yaml");
  EXPECT_EQ(c.listen_host, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 9443);
  EXPECT_EQ(c.tls.hostnames.size(), 2u);
  EXPECT_EQ(c.connectors.heartbeat_interval.count(), 5000);
  EXPECT_EQ(c.connectors.limits.max_streams, 2048u);
  EXPECT_EQ(c.connectors.limits.initial_window, 512u * 1024);
  EXPECT_EQ(c.max_request_body, 8u << 20);
}

TEST(AirlockdConfig, EmptyDocumentGivesDefaults) {
  auto c = parse_airlockd_config("", "empty");
  EXPECT_EQ(c.listen_port, 8443);
  EXPECT_FALSE(c.tls.plaintext);
}

void expect_error(const std::string& yaml, const std::string& fragment) {
  try {
    parse_airlockd_config(yaml, "airlockd.yaml");
    FAIL() << "accepted: " << yaml;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(AirlockdConfig, ErrorsNameTheKey) {
  expect_error("tls:\n  certfile: x\n", "unknown key 'tls.certfile'");
  expect_error("listn: 1\n", "unknown key 'listn'");
  expect_error("connectors:\n  heartbeat_interval: fast\n", "connectors.heartbeat_interval");
  expect_error("listen: 'example.com:80'\n", "must be an IP address");
  expect_error("listen: '127.0.0.1:99999'\n", "0..65535");
  expect_error("tls:\n  plaintext: true\nlisten: '0.0.0.0:80'\n", "loopback");
  expect_error("tls:\n  cert_file: a.pem\n", "given together");
  expect_error("connectors:\n  heartbeat_interval: 30s\n  dead_peer_timeout: 10s\n",
               "below connectors.dead_peer_timeout");
  expect_error("connectors:\n  max_frame_payload: 4Mi\n", "max_frame_payload");
  expect_error("mcp:\n  allowed_origins: [console.example.com]\n",
               "mcp.allowed_origins[0]: 'console.example.com' is not an origin");
  expect_error("mcp:\n  allowed_origins: ['https://a.example/app']\n", "mcp.allowed_origins[0]");
  expect_error("audit:\n  max_backlog: 99\n", "audit.max_backlog must be at least 100");
  expect_error("audit:\n  enabled: maybe\n", "audit.enabled");
  expect_error("audit:\n  jsonl: /var/log/a.jsonl\n", "unknown key 'audit.jsonl'");
}

TEST(AirlockdConfig, AuditSettings) {
  auto c = parse_airlockd_config("", "empty");
  EXPECT_TRUE(c.audit.enabled);
  EXPECT_EQ(c.audit.max_backlog, 100000u);
  EXPECT_TRUE(c.audit.jsonl_file.empty());
  c = parse_airlockd_config(
      "audit:\n  enabled: false\n  jsonl_file: /var/log/airlock/audit.jsonl\n  max_backlog: 100\n",
      "airlockd.yaml");
  EXPECT_FALSE(c.audit.enabled);
  EXPECT_EQ(c.audit.jsonl_file, "/var/log/airlock/audit.jsonl");
  EXPECT_EQ(c.audit.max_backlog, 100u);
}

TEST(AirlockdConfig, PlaintextOnLoopbackIsAllowed) {
  auto c = parse_airlockd_config("listen: '127.0.0.1:0'\ntls:\n  plaintext: true\n", "x");
  EXPECT_TRUE(c.tls.plaintext);
  EXPECT_EQ(c.listen_port, 0);
}

}  // namespace
}  // namespace airlock::controlplane
