// The environment worker's plain code: the event-stream parser, the session view that decides
// which tool calls run, and the tool results' content.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include "common/encoding.h"
#include "sandbox/managed_results.h"
#include "sandbox/session_events.h"
#include "sandbox/sse.h"
#include "sandbox/work_api.h"

namespace airlock::sandbox {
namespace {
namespace json = boost::json;
using managed::SessionView;

TEST(Sse, SplitsEventsAcrossArbitraryPiecesAndLineEndings) {
  const std::string stream =
      ": keep-alive\r\n\r\nevent: agent.tool_use\r\ndata: {\"a\":\r\ndata: 1}\r\nid: 7\r\n\r\n"
      "data: second\n\nevent: x\rdata: third\r\r";
  for (size_t piece = 1; piece <= stream.size(); ++piece) {
    sse::Parser p;
    std::vector<sse::Event> got;
    for (size_t i = 0; i < stream.size(); i += piece) {
      ASSERT_TRUE(p.feed(std::string_view(stream).substr(i, piece)));
      while (auto e = p.next()) got.push_back(*e);
    }
    ASSERT_EQ(got.size(), 3u) << "pieces of " << piece;
    EXPECT_EQ(got[0].type, "agent.tool_use");
    EXPECT_EQ(got[0].data, "{\"a\":\n1}");
    EXPECT_EQ(got[0].id, "7");
    EXPECT_EQ(got[1].type, "message");
    EXPECT_EQ(got[1].data, "second");
    EXPECT_EQ(got[1].id, "7");
    EXPECT_EQ(got[2].type, "x");
    EXPECT_EQ(got[2].data, "third");
  }
}

TEST(Sse, AnEventOverTheLimitFailsTheStream) {
  sse::Parser p(64);
  EXPECT_TRUE(p.feed("data: " + std::string(40, 'a') + "\n"));
  EXPECT_FALSE(p.feed("data: " + std::string(40, 'b') + "\n\n"));
  EXPECT_NE(p.error().find("longer than 64"), std::string::npos);
  EXPECT_FALSE(p.next());
  EXPECT_FALSE(p.feed("\n\n"));  // stays failed
}

json::object ev(std::string_view text) { return json::parse(text).as_object(); }

std::vector<std::string> ids(const SessionView& v) {
  std::vector<std::string> out;
  for (const auto& c : v.runnable()) out.push_back(c.id);
  return out;
}

const auto now = SessionView::Clock::now();

TEST(SessionView, ACallRunsOnceTheSessionWaitsOnItAndNotAfterItsResult) {
  SessionView v;
  v.apply(ev(R"({"type":"agent.tool_use","id":"t1","name":"bash","input":{"command":"ls"}})"), now);
  EXPECT_TRUE(ids(v).empty()) << "not waited on yet";
  v.apply(
      ev(R"({"type":"session.status_idle","id":"i1","stop_reason":{"type":"requires_action","event_ids":["t1"]}})"),
      now);
  ASSERT_EQ(ids(v), std::vector<std::string>{"t1"});
  EXPECT_EQ(v.runnable()[0].input.as_object().at("command").as_string(), "ls");
  v.take("t1");
  EXPECT_TRUE(ids(v).empty()) << "taken";
  // Replays (a reconnect's catch-up) change nothing.
  v.apply(ev(R"({"type":"agent.tool_use","id":"t1","name":"bash","input":{}})"), now);
  EXPECT_TRUE(ids(v).empty());
  v.apply(ev(R"({"type":"agent.tool_use","id":"t2","name":"read","evaluated_permission":"allow"})"),
          now);
  v.apply(ev(R"({"type":"user.tool_result","id":"r2","tool_use_id":"t2"})"), now);
  EXPECT_TRUE(v.answered("t2"));
  EXPECT_TRUE(ids(v).empty()) << "answered by someone else";
}

TEST(SessionView, TheListingMayComeBeforeTheCall) {
  SessionView v;
  v.apply(
      ev(R"({"type":"session.status_idle","id":"i1","stop_reason":{"type":"requires_action","event_ids":["t1"]}})"),
      now);
  v.apply(ev(R"({"type":"agent.custom_tool_use","id":"t1","name":"greet","input":{"who":"x"}})"),
          now);
  ASSERT_EQ(ids(v), std::vector<std::string>{"t1"});
  EXPECT_TRUE(v.runnable()[0].custom);
}

TEST(SessionView, AskWaitsForAConfirmationAndDenyNeverRuns) {
  SessionView v;
  v.apply(ev(R"({"type":"agent.tool_use","id":"a","name":"bash","evaluated_permission":"ask"})"),
          now);
  v.apply(ev(R"({"type":"agent.tool_use","id":"d","name":"bash","evaluated_permission":"deny"})"),
          now);
  v.apply(ev(R"({"type":"agent.tool_use","id":"n","name":"bash","evaluated_permission":"ask"})"),
          now);
  v.apply(ev(R"({"type":"agent.tool_use","id":"w","name":"bash","evaluated_permission":"weird"})"),
          now);
  EXPECT_TRUE(ids(v).empty());
  EXPECT_EQ(v.awaiting_confirmation(), (std::vector<std::string>{"a", "n"}));
  v.apply(ev(R"({"type":"user.tool_confirmation","id":"c1","tool_use_id":"n","result":"deny"})"),
          now);
  v.apply(ev(R"({"type":"user.tool_confirmation","id":"c2","tool_use_id":"a","result":"allow"})"),
          now);
  v.apply(ev(R"({"type":"user.tool_confirmation","id":"c3","tool_use_id":"d","result":"allow"})"),
          now);
  EXPECT_EQ(ids(v), std::vector<std::string>{"a"}) << "an evaluated deny is final";
  v.apply(ev(R"({"type":"user.tool_confirmation","id":"c4","tool_use_id":"w","result":"allow"})"),
          now);
  EXPECT_EQ(ids(v), (std::vector<std::string>{"a", "w"}));
}

TEST(SessionView, EndOfTurnIdlesAndTerminationEnds) {
  SessionView v;
  v.apply(ev(R"({"type":"agent.tool_use","id":"t1","name":"bash","evaluated_permission":"allow"})"),
          now);
  v.apply(ev(R"({"type":"session.status_idle","id":"i1","stop_reason":{"type":"end_turn"}})"), now);
  ASSERT_TRUE(v.idle_since());
  EXPECT_TRUE(ids(v).empty()) << "the turn moved on without it";
  v.apply(ev(R"({"type":"session.status_running","id":"s1"})"), now);
  EXPECT_FALSE(v.idle_since());
  EXPECT_FALSE(v.ended());
  v.apply(ev(R"({"type":"session.deleted","id":"x"})"), now);
  EXPECT_TRUE(v.ended());
  EXPECT_FALSE(v.apply(ev(R"({"id":"no-type"})"), now));
  EXPECT_FALSE(v.apply(ev(R"({"type":"no.id"})"), now));
}

std::shared_ptr<const redact::Patterns> secret(const std::string& name, const std::string& value) {
  return redact::Patterns::build({{name, value}});
}

TEST(ManagedResults, TextIsRedactedByEverySetAndEmptyBecomesNoOutput) {
  toolbox::Reply r;
  r.text = "key=sk-live-0123456789 token=st-abcdefghijkl";
  r.exit_code = 0;
  auto c = managed::result_content(
      "bash", r, {secret("api", "sk-live-0123456789"), nullptr, secret("tok", "st-abcdefghijkl")});
  EXPECT_FALSE(c.is_error);
  EXPECT_EQ(c.redactions, 2u);
  EXPECT_EQ(c.content.at(0).as_object().at("text").as_string(),
            "key=[REDACTED:api] token=[REDACTED:tok]");
  r.text.clear();
  r.exit_code = 3;
  c = managed::result_content("bash", r, {});
  EXPECT_TRUE(c.is_error) << "a failed command is an error result";
  EXPECT_EQ(c.content.at(0).as_object().at("text").as_string(), "(no output)");
}

TEST(ManagedResults, MediaBecomesABlockUnlessItHoldsASecret) {
  toolbox::Reply r;
  r.media_type = "application/pdf";
  r.data = base64("%PDF-1.4 harmless", false, true);
  auto c = managed::result_content("read", r, {secret("api", "sk-live-0123456789")});
  const auto& b = c.content.at(0).as_object();
  EXPECT_EQ(b.at("type").as_string(), "document");
  EXPECT_EQ(b.at("source").as_object().at("data").as_string(), r.data);
  r.data = base64("%PDF-1.4 sk-live-0123456789", false, true);
  c = managed::result_content("read", r, {secret("api", "sk-live-0123456789")});
  EXPECT_TRUE(c.is_error);
  EXPECT_EQ(c.content.at(0).as_object().at("type").as_string(), "text");
  EXPECT_EQ(c.content.at(0).as_object().at("text").as_string().find("sk-live"), std::string::npos);
}

TEST(ManagedResults, SessionsTokenFromTheWorkSecret) {
  const std::string secret_json = R"({"version":1,"sessions_token":"st-123"})";
  EXPECT_EQ(managed::sessions_token_from_secret(base64(secret_json, true, false)), "st-123");
  EXPECT_EQ(managed::sessions_token_from_secret(base64(secret_json, false, true)), "st-123");
  EXPECT_EQ(managed::sessions_token_from_secret(""), "");
  EXPECT_EQ(managed::sessions_token_from_secret("!!not base64"), "");
  EXPECT_EQ(managed::sessions_token_from_secret(base64(R"({"sessions_token":5})", true, false)),
            "");
  EXPECT_EQ(managed::sessions_token_from_secret(base64("[1]", true, false)), "");
}

// The environment key is sent only where it cannot be read on the way: plain HTTP is taken for
// a loopback test double alone. Making the client connects nowhere.
TEST(WorkApi, PlainHttpOnlyToLoopbackAndOnlyHttpOrHttps) {
  boost::asio::io_context io;
  auto make = [&](const std::string& url) {
    managed::ApiOptions o;
    o.base_url = url;
    managed::ApiClient client(io.get_executor(), o);
  };
  EXPECT_NO_THROW(make("http://127.0.0.1:8080"));
  EXPECT_NO_THROW(make("http://localhost:8080/prefix"));
  EXPECT_NO_THROW(make("http://[::1]:8080"));
  EXPECT_NO_THROW(make("https://api.anthropic.com"));
  for (const char* refused :
       {"http://api.anthropic.com", "http://10.0.0.1:80", "http://127.example.com",
        "ftp://127.0.0.1", "api.anthropic.com", ""}) {
    try {
      make(refused);
      ADD_FAILURE() << refused << " was taken";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("base URL"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace airlock::sandbox
