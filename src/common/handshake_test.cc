#include "common/handshake.h"

#include <gtest/gtest.h>

namespace airlock::proto {
namespace {

TEST(Handshake, HelloRoundTripsWithInventory) {
  Hello h;
  h.kind = ConnectorKind::kTunnel;
  h.name = "sales";
  h.software = "mcp-tunnel/0.1.0";
  h.inventory = {{.name = "crm", .url = "tcp://crm:8080", .credentials = {"prod-crm"}, .tools = {"a"}}};
  Hello back;
  std::string error;
  ASSERT_TRUE(parse_hello(serialize(h), back, error)) << error;
  EXPECT_EQ(back.name, "sales");
  EXPECT_EQ(back.software, "mcp-tunnel/0.1.0");
  ASSERT_EQ(back.inventory.size(), 1u);
  EXPECT_EQ(back.inventory[0].credentials, std::vector<std::string>{"prod-crm"});
  EXPECT_EQ(back.limits.initial_window, h.limits.initial_window);
}

TEST(Handshake, VersionMismatchNamesBothVersions) {
  Hello h;
  std::string text = serialize(h);
  text.replace(text.find("\"protocol_version\":1"), 20, "\"protocol_version\":7");
  Hello back;
  std::string error;
  EXPECT_FALSE(parse_hello(text, back, error));
  EXPECT_NE(error.find("connector speaks 7"), std::string::npos) << error;
  EXPECT_NE(error.find("airlockd speaks 1"), std::string::npos) << error;
}

TEST(Handshake, BadFieldsAreNamed) {
  Hello back;
  std::string error;
  EXPECT_FALSE(parse_hello("not json", back, error));
  EXPECT_NE(error.find("not valid JSON"), std::string::npos);
  EXPECT_FALSE(parse_hello("[]", back, error));
  EXPECT_FALSE(parse_hello(R"({"protocol_version":1,"kind":"robot","limits":{}})", back, error));
  EXPECT_NE(error.find("hello.kind"), std::string::npos) << error;
  EXPECT_FALSE(parse_hello(
      R"({"protocol_version":1,"kind":"tunnel","limits":{"max_streams":1,"initial_window":10,"max_frame_payload":16384}})",
      back, error));
  EXPECT_NE(error.find("initial_window"), std::string::npos) << error;
  EXPECT_FALSE(parse_hello(
      R"({"protocol_version":1,"kind":"tunnel","name":"../etc","limits":{"max_streams":1,"initial_window":65536,"max_frame_payload":16384}})",
      back, error));
  EXPECT_NE(error.find("hello.name"), std::string::npos) << error;
  EXPECT_FALSE(parse_hello(
      R"({"protocol_version":1,"kind":"tunnel","limits":{"max_streams":1,"initial_window":65536,"max_frame_payload":16384},"inventory":[{"url":"x"}]})",
      back, error));
  EXPECT_NE(error.find("hello.inventory[0].name is required"), std::string::npos) << error;
}

TEST(Handshake, AcceptRoundTrips) {
  Accept a;
  a.connection_id = "c0ffee";
  a.name = "sales";
  a.heartbeat_interval = std::chrono::milliseconds(500);
  a.dead_peer_timeout = std::chrono::milliseconds(2000);
  Accept back;
  std::string error;
  ASSERT_TRUE(parse_accept(serialize(a), back, error)) << error;
  EXPECT_EQ(back.connection_id, "c0ffee");
  EXPECT_EQ(back.heartbeat_interval.count(), 500);
  EXPECT_EQ(back.dead_peer_timeout.count(), 2000);
}

TEST(Handshake, ResourceNames) {
  EXPECT_TRUE(is_valid_resource_name("my-sales-tunnel"));
  EXPECT_TRUE(is_valid_resource_name("a.b_c"));
  EXPECT_FALSE(is_valid_resource_name(""));
  EXPECT_FALSE(is_valid_resource_name("-x"));
  EXPECT_FALSE(is_valid_resource_name("a/b"));
  EXPECT_FALSE(is_valid_resource_name(std::string(64, 'a')));
}

TEST(Handshake, ASandboxHelloCarriesItsDescriptionAndInstance) {
  Hello h;
  h.kind = ConnectorKind::kSandbox;
  h.instance = "76c35815048c9204";
  h.sandbox = SandboxDescription{.image = "registry.example.com/tool-executor:latest",
                                 .image_digest = "sha256:" + std::string(64, 'c'),
                                 .cpu = "2",
                                 .memory = "4Gi",
                                 .pids = 256,
                                 .allowed_outbound = {"*.internal-api.example.com"},
                                 .max_sessions = 16};
  Hello back;
  std::string error;
  ASSERT_TRUE(parse_hello(serialize(h), back, error)) << error;
  EXPECT_EQ(back.instance, h.instance);
  ASSERT_TRUE(back.sandbox);
  EXPECT_EQ(back.sandbox->image, "registry.example.com/tool-executor:latest");
  EXPECT_EQ(back.sandbox->image_digest, h.sandbox->image_digest);
  EXPECT_EQ(back.sandbox->memory, "4Gi");
  EXPECT_EQ(back.sandbox->allowed_outbound, h.sandbox->allowed_outbound);
  EXPECT_EQ(back.sandbox->max_sessions, 16u);
  // A tunnel's hello has none; a malformed description names its field.
  ASSERT_TRUE(parse_hello(serialize(Hello{}), back, error)) << error;
  EXPECT_FALSE(back.sandbox);
  std::string text = serialize(h);
  text.replace(text.find("\"max_sessions\":16"), 17, "\"max_sessions\":\"x\"");
  EXPECT_FALSE(parse_hello(text, back, error));
  EXPECT_NE(error.find("hello.sandbox.max_sessions"), std::string::npos) << error;
}

}  // namespace
}  // namespace airlock::proto
