#include "common/stream_contract.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace airlock::proto {
namespace {
namespace json = boost::json;

TEST(StreamContract, KindsRoundTripAndUnknownKindsAreQuoted) {
  for (auto k : {StreamKind::kMcp, StreamKind::kInventory, StreamKind::kEvents}) {
    EXPECT_EQ(parse_stream_kind(stream_kind_of(stream_meta(k))), k);
  }
  EXPECT_EQ(stream_kind_of(R"({"kind":"shell"})"), "shell");
  EXPECT_FALSE(parse_stream_kind("shell"));
  EXPECT_EQ(stream_kind_of("not json"), "(none)");
  EXPECT_EQ(stream_kind_of(R"({"kind":7})"), "(none)");
  EXPECT_EQ(stream_kind_of("[]"), "(none)");
}

TEST(StreamContract, McpOpenRoundTrips) {
  McpStreamOpen m;
  m.server = "sales";
  m.agent = "sales-bot";
  m.session = "3f9c0a1b22de";
  m.client = json::object{{"protocolVersion", "2025-11-25"},
                          {"capabilities", json::object{{"sampling", json::object{}}}}};
  m.credential = "crm-alice";
  McpStreamOpen back;
  std::string error;
  ASSERT_TRUE(parse_mcp_open(serialize(m), back, error)) << error;
  EXPECT_EQ(back.server, "sales");
  EXPECT_EQ(back.agent, "sales-bot");
  EXPECT_EQ(back.session, "3f9c0a1b22de");
  EXPECT_EQ(back.client, m.client);
  EXPECT_EQ(back.credential, "crm-alice");
  // Without a credential the field is left out, and parses back as empty.
  m.credential.clear();
  const std::string text = serialize(m);
  EXPECT_EQ(text.find("credential"), std::string::npos) << text;
  ASSERT_TRUE(parse_mcp_open(text, back, error)) << error;
  EXPECT_TRUE(back.credential.empty());
  // A session's stream says nothing of statelessness; a 2026 agent's context stream does.
  EXPECT_EQ(text.find("stateless"), std::string::npos) << text;
  EXPECT_FALSE(back.stateless);
  m.stateless = true;
  ASSERT_TRUE(parse_mcp_open(serialize(m), back, error)) << error;
  EXPECT_TRUE(back.stateless);
}

TEST(StreamContract, McpOpenNamesTheBadField) {
  McpStreamOpen out;
  std::string error;
  auto fails_with = [&](std::string_view meta, std::string_view want) {
    EXPECT_FALSE(parse_mcp_open(meta, out, error)) << meta;
    EXPECT_NE(error.find(want), std::string::npos) << "error: " << error << "\nmeta: " << meta;
  };
  fails_with("{", "mcp stream meta not valid JSON");
  fails_with("[1]", "must be a JSON object");
  fails_with(R"({"kind":"inventory","server":"s","agent":"a"})", "mcp stream meta.kind must be");
  fails_with(R"({"kind":"mcp","agent":"a"})", "mcp stream meta.server is required");
  fails_with(R"({"kind":"mcp","server":"","agent":"a"})", "mcp stream meta.server must not be empty");
  fails_with(R"({"kind":"mcp","server":"s"})", "mcp stream meta.agent is required");
  fails_with(R"({"kind":"mcp","server":"s","agent":5})", "mcp stream meta.agent must be a string");
  fails_with(R"({"kind":"mcp","server":"s","agent":"a","client":[]})",
             "mcp stream meta.client must be an object");
  fails_with(R"({"kind":"mcp","server":"s","agent":"a","credential":")" + std::string(200, 'c') +
                 R"("})",
             "mcp stream meta.credential is longer than 128");
  fails_with(R"({"kind":"mcp","server":"s","agent":"a","stateless":"yes"})",
             "mcp stream meta.stateless must be true or false");
  // A newer peer's extra fields are ignored.
  EXPECT_TRUE(parse_mcp_open(R"({"kind":"mcp","server":"s","agent":"a","colour":"red"})", out,
                             error))
      << error;
}

TEST(StreamContract, EnvelopeRoundTripsWithAndWithoutRelated) {
  McpEnvelope e;
  e.message = json::object{{"jsonrpc", "2.0"}, {"id", 7}, {"result", json::object{}}};
  e.related = json::value(7);
  const std::string line = serialize_line(e);
  ASSERT_EQ(line.back(), '\n');
  McpEnvelope back;
  std::string error;
  ASSERT_TRUE(parse_envelope(std::string_view(line).substr(0, line.size() - 1), back, error))
      << error;
  EXPECT_EQ(back.message, e.message);
  ASSERT_TRUE(back.related);
  EXPECT_EQ(*back.related, json::value(7));
  e.related.reset();
  ASSERT_TRUE(parse_envelope(serialize_line(e), back, error)) << error;
  EXPECT_FALSE(back.related);
  e.related = json::value("req-1");
  ASSERT_TRUE(parse_envelope(serialize_line(e), back, error)) << error;
  EXPECT_EQ(*back.related, json::value("req-1"));
  EXPECT_EQ(back.redactions, 0u);
  e.redactions = 3;
  ASSERT_TRUE(parse_envelope(serialize_line(e), back, error)) << error;
  EXPECT_EQ(back.redactions, 3u);
  EXPECT_EQ(back.message, e.message);
}

TEST(StreamContract, EnvelopeNamesTheBadField) {
  McpEnvelope out;
  std::string error;
  EXPECT_FALSE(parse_envelope(R"({"related":1})", out, error));
  EXPECT_EQ(error, "envelope.message is required");
  EXPECT_FALSE(parse_envelope(R"({"message":"hi"})", out, error));
  EXPECT_EQ(error, "envelope.message must be an object");
  EXPECT_FALSE(parse_envelope(R"({"message":{},"related":{"a":1}})", out, error));
  EXPECT_NE(error.find("envelope.related must be a request id"), std::string::npos) << error;
  EXPECT_FALSE(parse_envelope(R"({"message":{},"redactions":-1})", out, error));
  EXPECT_EQ(error, "envelope.redactions must be a non-negative integer");
  EXPECT_FALSE(parse_envelope(R"({"message":{},"redactions":"2"})", out, error));
  EXPECT_FALSE(parse_envelope("{\"message\":", out, error));
  EXPECT_NE(error.find("envelope not valid JSON"), std::string::npos) << error;
  // Nesting is bounded.
  std::string deep = R"({"message":)";
  for (unsigned i = 0; i < kMaxMessageDepth + 2; ++i) deep += "[";
  EXPECT_FALSE(parse_envelope(deep, out, error));
}

TEST(StreamContract, InventoryRoundTripsAndChecksWhatAirlockdRoutesBy) {
  InventoryReport r;
  r.servers.push_back(json::object{{"name", "sales"},
                                   {"status", "ok"},
                                   {"tools", json::array{json::object{{"name", "fetch"}}}}});
  r.servers.push_back(json::object{{"name", "wiki"}, {"status", "unavailable"}, {"error", "down"}});
  InventoryReport back;
  std::string error;
  ASSERT_TRUE(parse_inventory(serialize(r), back, error)) << error;
  EXPECT_EQ(back.servers, r.servers);

  auto fails_with = [&](std::string_view body, std::string_view want) {
    EXPECT_FALSE(parse_inventory(body, back, error)) << body;
    EXPECT_NE(error.find(want), std::string::npos) << "error: " << error << "\nbody: " << body;
  };
  fails_with("[]", "inventory must be a JSON object");
  fails_with("{}", "inventory.servers is required");
  fails_with(R"({"servers":{}})", "inventory.servers must be an array");
  fails_with(R"({"servers":[1]})", "inventory.servers[0] must be an object");
  fails_with(R"({"servers":[{"name":"a"},{"url":"x"}]})", "inventory.servers[1].name is required");
  fails_with(R"({"servers":[{"name":"a","status":"great"}]})",
             "inventory.servers[0].status must be");
  fails_with(R"({"servers":[{"name":"a","tools":{}}]})",
             "inventory.servers[0].tools must be an array");
  std::string many = R"({"servers":[)";
  for (size_t i = 0; i <= kMaxInventoryServers; ++i) many += (i ? "," : "") + std::string("{\"name\":\"s\"}");
  fails_with(many + "]}", "more than 1024");
}

TEST(StreamContract, RedactionEventsRoundTripAndMalformedLinesAreCounted) {
  std::vector<RedactionEvent> events = {
      {.secret = "prod-sales-token", .server = "sales", .tool = "fetch", .agent = "bot", .count = 3},
      {.secret = "crm-key", .server = "", .tool = "", .agent = "", .count = 1}};
  auto back = parse_redaction_events(serialize(events));
  EXPECT_EQ(back.events, events);
  EXPECT_EQ(back.malformed, 0u);

  const std::string body =
      serialize(events) +
      "not json\n"
      R"({"type":"other","secret":"s","server":"","tool":"","agent":"","count":1})" "\n"
      R"({"type":"secret_redacted","secret":"s","server":"","tool":"","agent":"","count":0})" "\n"
      R"({"type":"secret_redacted","secret":"s","server":"","tool":"","agent":"","count":-1})" "\n"
      R"({"type":"secret_redacted","secret":"","server":"","tool":"","agent":"","count":1})" "\n"
      R"({"type":"secret_redacted","secret":"s","tool":"","agent":"","count":1})" "\n"
      "\n";
  back = parse_redaction_events(body);
  EXPECT_EQ(back.events, events);
  EXPECT_EQ(back.malformed, 6u);
}

TEST(StreamContract, SessionLoadRoundTripsAndNamesBadFields) {
  SessionLoad back;
  std::string error;
  ASSERT_TRUE(parse_session_load(serialize(SessionLoad{.in_use = 3, .limit = 16}), back, error))
      << error;
  EXPECT_EQ(back, (SessionLoad{.in_use = 3, .limit = 16}));
  EXPECT_FALSE(parse_session_load(R"({"max_sessions":4})", back, error));
  EXPECT_EQ(error, "load.sessions_in_use is required");
  EXPECT_FALSE(parse_session_load(R"({"sessions_in_use":-1,"max_sessions":4})", back, error));
  EXPECT_NE(error.find("load.sessions_in_use must be an integer"), std::string::npos) << error;
  EXPECT_FALSE(parse_session_load("nope", back, error));
}

}  // namespace
}  // namespace airlock::proto
