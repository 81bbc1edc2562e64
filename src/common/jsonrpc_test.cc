#include "common/jsonrpc.h"

#include <gtest/gtest.h>

namespace airlock::jsonrpc {
namespace {

TEST(JsonRpc, ClassifiesRequestsNotificationsAndResponses) {
  std::string error;
  auto r = parse(R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}})", error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->kind, Kind::kRequest);
  EXPECT_EQ(r->method(), "tools/call");
  EXPECT_EQ(id_key(r->id()), "n:7");
  auto n = parse(R"({"jsonrpc":"2.0","method":"notifications/initialized"})", error);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->kind, Kind::kNotification);
  auto s = parse(R"({"jsonrpc":"2.0","id":"a","result":{}})", error);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->kind, Kind::kResponse);
  EXPECT_EQ(id_key(s->id()), "s:a");
}

TEST(JsonRpc, RejectsMalformedMessagesWithAReason) {
  struct Case {
    const char* text;
    const char* says;
  };
  const Case cases[] = {
      {"{not json", "not valid JSON"},
      {R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])", "batches are not supported"},
      {R"("hello")", "must be a JSON object"},
      {R"({"id":1,"method":"ping"})", "\"jsonrpc\""},
      {R"({"jsonrpc":"1.0","id":1,"method":"ping"})", "\"jsonrpc\""},
      {R"({"jsonrpc":"2.0","id":{"x":1},"method":"ping"})", "\"id\" must be"},
      {R"({"jsonrpc":"2.0","id":null,"method":"ping"})", "must not be null"},
      {R"({"jsonrpc":"2.0","id":1,"method":""})", "non-empty string"},
      {R"({"jsonrpc":"2.0","id":1,"method":"ping","params":3})", "\"params\""},
      {R"({"jsonrpc":"2.0","id":1})", "exactly one of"},
      {R"({"jsonrpc":"2.0","id":1,"result":{},"error":{}})", "exactly one of"},
      {R"({"jsonrpc":"2.0","id":1,"error":"bad"})", "\"error\" must be an object"},
  };
  for (const auto& c : cases) {
    std::string error;
    bool batch = false;
    EXPECT_FALSE(parse(c.text, error, &batch)) << c.text;
    EXPECT_NE(error.find(c.says), std::string::npos) << c.text << " -> " << error;
  }
  std::string error;
  bool batch = false;
  parse("[]", error, &batch);
  EXPECT_TRUE(batch);
}

TEST(JsonRpc, LineSplitterHandlesAnySplitAndBoundsLines) {
  const std::string text = "{\"a\":1}\r\n\n{\"b\":2}\n{\"c\":";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    LineSplitter lines(1024);
    ASSERT_TRUE(lines.feed(text.substr(0, cut)));
    ASSERT_TRUE(lines.feed(text.substr(cut)));
    std::vector<std::string> got;
    while (auto l = lines.next()) got.push_back(*l);
    EXPECT_EQ(got, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"})) << cut;
    EXPECT_EQ(lines.buffered(), 5u);
  }
  LineSplitter small(8);
  EXPECT_TRUE(small.feed("12345678\n"));
  EXPECT_FALSE(small.feed("123456789"));  // an unterminated line past the limit
}

TEST(JsonRpc, SseParserAssemblesEventsAcrossChunks) {
  const std::string stream =
      ": comment\n"
      "id: p1-0\n"
      "retry: 1500\n"
      "data:\n\n"
      "id: p1-1\n"
      "event: message\n"
      "data: {\"a\":\n"
      "data: 1}\n\n";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    SseParser p(1 << 20);
    ASSERT_TRUE(p.feed(stream.substr(0, cut)));
    ASSERT_TRUE(p.feed(stream.substr(cut)));
    auto prime = p.next();
    ASSERT_TRUE(prime) << cut;
    EXPECT_EQ(prime->id, "p1-0");
    EXPECT_EQ(prime->retry_ms, 1500);
    EXPECT_TRUE(prime->data.empty());
    auto ev = p.next();
    ASSERT_TRUE(ev) << cut;
    EXPECT_EQ(ev->data, "{\"a\":\n1}");
    EXPECT_EQ(ev->event, "message");
    EXPECT_FALSE(p.next());
    EXPECT_EQ(p.last_event_id(), "p1-1");
  }
}

TEST(JsonRpc, SseFormatRoundTrips) {
  const std::string wire = format_sse("g-3", "line1\nline2", 2000);
  EXPECT_EQ(wire, "id: g-3\nretry: 2000\ndata: line1\ndata: line2\n\n");
  SseParser p(1024);
  ASSERT_TRUE(p.feed(wire));
  auto ev = p.next();
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->data, "line1\nline2");
  EXPECT_EQ(ev->id, "g-3");
}

}  // namespace
}  // namespace airlock::jsonrpc
