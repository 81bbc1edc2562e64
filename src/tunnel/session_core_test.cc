// SessionCore replayed: message sequences in, effects out — the id mapping both ways, the
// handshake, what a lost session retries and what it fails, the backoff between starts, and
// the tunnel's own requests.
#include "tunnel/session_core.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace airlock::tunnel {
namespace {
using namespace session;
using namespace std::chrono_literals;

json::object parse(std::string_view text) { return boost::json::parse(text).as_object(); }

template <class T>
std::vector<T> only(const Effects& effects) {
  std::vector<T> out;
  for (const auto& e : effects) {
    if (auto* t = std::get_if<T>(&e)) out.push_back(*t);
  }
  return out;
}

class Core : public ::testing::Test {
 protected:
  // Brings the session up: the Start, the transport, initialize answered.
  Effects start_with(Effects first) {
    auto starts = only<Start>(first);
    EXPECT_EQ(starts.size(), 1u);
    auto open = core.on_transport_open(starts.at(0).attempt);
    auto init = only<Transmit>(open);
    EXPECT_EQ(init.size(), 1u);
    EXPECT_EQ(init.at(0).message.at("method"), "initialize");
    EXPECT_EQ(init.at(0).message.at("params").at("clientInfo").at("name"), "agent");
    json::object answer{{"jsonrpc", "2.0"},
                        {"id", init.at(0).message.at("id")},
                        {"result", parse(R"({"protocolVersion":"2025-06-18","capabilities":{}})")}};
    return core.on_upstream(answer, std::nullopt, now);
  }
  json::object response(int64_t id) {
    return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", json::object{}}};
  }
  Clock::time_point now = Clock::time_point{} + 1h;
  SessionCore core{"crm", parse(R"({"clientInfo":{"name":"agent","version":"1"}})"),
                   SessionCore::kRestartPolicy, 7};
};

TEST_F(Core, RequestsGoUpUnderTheSessionsOwnIdsAndComeBackUnderTheirs) {
  auto first = core.send(parse(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})"), now);
  auto second = core.send(parse(R"({"jsonrpc":"2.0","id":"1","method":"prompts/list"})"), now);
  EXPECT_TRUE(second.empty()) << "one start for both";
  auto up = start_with(first);
  // notifications/initialized first, then the version, then both requests, in order.
  auto sent = only<Transmit>(up);
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0].message.at("method"), "notifications/initialized");
  EXPECT_EQ(only<Ready>(up).at(0).protocol_version, "2025-06-18");
  const int64_t a = sent[1].message.at("id").as_int64(), b = sent[2].message.at("id").as_int64();
  EXPECT_NE(a, b);
  EXPECT_EQ(sent[1].message.at("method"), "tools/list");
  // Answered in the other order, each under the id it came with.
  auto back_b = only<Deliver>(core.on_upstream(response(b), std::nullopt, now));
  ASSERT_EQ(back_b.size(), 1u);
  EXPECT_EQ(back_b[0].message.at("id"), "1");
  auto back_a = only<Deliver>(core.on_upstream(response(a), std::nullopt, now));
  ASSERT_EQ(back_a.size(), 1u);
  EXPECT_EQ(back_a[0].message.at("id"), 1);
  // An answer to nothing (answered already, or never asked) goes nowhere.
  EXPECT_TRUE(core.on_upstream(response(a), std::nullopt, now).empty());
  EXPECT_EQ(core.pending(), 0u);
}

TEST_F(Core, ACancellationIsMappedAndItsAnswerDropped) {
  auto up = start_with(core.send(parse(R"({"jsonrpc":"2.0","id":"c","method":"tools/call",
                                           "params":{"name":"slow"}})"),
                                 now));
  const int64_t id = only<Transmit>(up).back().message.at("id").as_int64();
  auto cancel = only<Transmit>(core.send(
      parse(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c"}})"),
      now));
  ASSERT_EQ(cancel.size(), 1u);
  EXPECT_EQ(cancel[0].message.at("params").at("requestId"), id);
  EXPECT_TRUE(core.on_upstream(response(id), std::nullopt, now).empty());
  // A second cancellation of the same request concerns nothing the server has: not sent.
  EXPECT_TRUE(core.send(parse(R"({"jsonrpc":"2.0","method":"notifications/cancelled",
                                  "params":{"requestId":"c"}})"),
                        now)
                  .empty());
}

TEST_F(Core, ALostSessionRetriesReadsOnceAndNeverACall) {
  auto up = start_with(core.send(parse(R"({"jsonrpc":"2.0","id":1,"method":"tools/call",
                                           "params":{"name":"pay"}})"),
                                 now));
  core.send(parse(R"({"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"x"}})"),
            now);
  auto lost = core.on_lost("process exited", now);
  auto failed = only<Deliver>(lost);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].message.at("id"), 1);
  EXPECT_EQ(failed[0].message.at("error").at("code"), -32004);
  EXPECT_NE(boost::json::serialize(failed[0].message).find("may have had effects"),
            std::string::npos);
  EXPECT_EQ(only<Stop>(lost).size(), 1u);
  auto restart = only<Start>(lost);
  ASSERT_EQ(restart.size(), 1u) << "the read waits for a new session";
  EXPECT_LE(restart[0].after, 250ms);
  // The new session sends the read again; lost once more, it is not retried twice.
  auto again = start_with(lost);
  auto resent = only<Transmit>(again);
  ASSERT_EQ(resent.size(), 2u);
  EXPECT_EQ(resent[1].message.at("method"), "resources/read");
  EXPECT_EQ(core.restarts(), 1u);
  auto lost_again = core.on_lost("process exited", now);
  auto gave_up = only<Deliver>(lost_again);
  ASSERT_EQ(gave_up.size(), 1u);
  EXPECT_EQ(gave_up[0].message.at("id"), 2);
  EXPECT_TRUE(only<Start>(lost_again).empty()) << "nothing left to start a session for";
}

TEST_F(Core, AFailedStartFailsWhatWaitsAndTheNextStartBacksOff) {
  auto first = core.send(parse(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})"), now);
  const uint64_t attempt = only<Start>(first).at(0).attempt;
  EXPECT_EQ(only<Start>(first).at(0).after, 0ms);
  auto failed = core.on_start_failed(attempt, "connection refused", now);
  auto answer = only<Deliver>(failed);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].message.at("error").at("code"), -32001);
  EXPECT_EQ(answer[0].message.at("error").at("message"),
            "upstream server 'crm' is unavailable: connection refused");
  EXPECT_EQ(core.last_error(), "connection refused");
  // Each failure doubles the ceiling of the wait (full jitter below it), up to 30 s.
  std::chrono::milliseconds ceiling = 250ms;
  for (int i = 0; i < 10; ++i) {
    auto next = only<Start>(core.send(parse(R"({"jsonrpc":"2.0","id":2,"method":"ping"})"), now));
    ASSERT_EQ(next.size(), 1u);
    EXPECT_LE(next[0].after, ceiling);
    // A report about an earlier start changes nothing.
    EXPECT_TRUE(core.on_start_failed(attempt, "late", now).empty());
    core.on_start_failed(next[0].attempt, "connection refused", now);
    ceiling = std::min<std::chrono::milliseconds>(ceiling * 2, 30s);
  }
  // Once the wait has passed, a start is immediate.
  auto later =
      only<Start>(core.send(parse(R"({"jsonrpc":"2.0","id":3,"method":"ping"})"), now + 31s));
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].after, 0ms);
}

TEST_F(Core, ARefusedInitializeIsAFailedStart) {
  auto first = core.send(parse(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})"), now);
  auto init = only<Transmit>(core.on_transport_open(only<Start>(first).at(0).attempt));
  auto refused = core.on_upstream(
      json::object{{"jsonrpc", "2.0"},
                   {"id", init.at(0).message.at("id")},
                   {"error", parse(R"({"code":-32602,"message":"unsupported version"})")}},
      std::nullopt, now);
  EXPECT_TRUE(only<Stop>(refused).at(0).starting);
  auto answer = only<Deliver>(refused);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_NE(boost::json::serialize(answer[0].message).find("initialize was refused"),
            std::string::npos);
  EXPECT_EQ(core.state(), SessionCore::State::kIdle);
}

TEST_F(Core, AServerRequestIsRelatedToTheCallItBelongsTo) {
  auto up = start_with(core.send(parse(R"({"jsonrpc":"2.0","id":"a","method":"tools/call",
                                           "params":{"name":"x"}})"),
                                 now));
  const int64_t a = only<Transmit>(up).back().message.at("id").as_int64();
  const auto sampling = parse(R"({"jsonrpc":"2.0","id":90,"method":"sampling/createMessage"})");
  // The only call in flight, when the transport says nothing.
  auto one = only<Deliver>(core.on_upstream(sampling, std::nullopt, now));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].related, json::value("a"));
  EXPECT_EQ(one[0].message.at("id"), 90) << "the server's id travels unchanged";
  core.send(parse(R"({"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"y"}})"),
            now);
  EXPECT_FALSE(only<Deliver>(core.on_upstream(sampling, std::nullopt, now)).at(0).related);
  EXPECT_EQ(only<Deliver>(core.on_upstream(sampling, json::value(a), now)).at(0).related,
            json::value("a"));
  // The agent's answer goes up under the server's id.
  auto answer =
      only<Transmit>(core.send(parse(R"({"jsonrpc":"2.0","id":90,"result":{"content":[]}})"), now));
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].message.at("id"), 90);
}

TEST_F(Core, OwnRequestsAreAnsweredFailedAndClosed) {
  Effects first;
  const int64_t ping = core.own_request("ping", {}, now, first);
  auto up = start_with(first);
  ASSERT_EQ(only<Transmit>(up).back().message.at("id"), ping);
  auto answered = only<OwnReply>(core.on_upstream(response(ping), std::nullopt, now));
  ASSERT_EQ(answered.size(), 1u);
  EXPECT_EQ(answered[0].id, ping);
  EXPECT_TRUE(answered[0].reply.has_value());
  Effects more;
  const int64_t list = core.own_request("tools/list", {}, now, more);
  auto lost = only<OwnReply>(core.on_lost("connection reset", now));
  ASSERT_EQ(lost.size(), 1u) << "own requests are the caller's to retry";
  EXPECT_EQ(lost[0].id, list);
  EXPECT_FALSE(lost[0].reply);
  EXPECT_NE(lost[0].error.find("connection reset"), std::string::npos);
  Effects last;
  const int64_t after = core.own_request("ping", {}, now, last);
  auto closed = only<OwnReply>(core.close());
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].id, after);
  EXPECT_EQ(closed[0].error, "session closed");
  EXPECT_TRUE(core.send(parse(R"({"jsonrpc":"2.0","id":1,"method":"ping"})"), now).empty());
}

TEST_F(Core, MalformedMessagesAreDroppedWithoutEffects) {
  EXPECT_TRUE(core.send(parse(R"({"id":1,"method":"ping"})"), now).empty());
  EXPECT_TRUE(core.send(parse(R"({"jsonrpc":"2.0","id":[1],"method":"ping"})"), now).empty());
  start_with(core.send(parse(R"({"jsonrpc":"2.0","id":1,"method":"ping"})"), now));
  EXPECT_TRUE(core.on_upstream(parse(R"({"jsonrpc":"1.0","id":2})"), std::nullopt, now).empty());
  EXPECT_TRUE(
      core.on_upstream(parse(R"({"jsonrpc":"2.0","id":"2","result":{}})"), std::nullopt, now)
          .empty());
  EXPECT_EQ(core.pending(), 1u);
}

}  // namespace
}  // namespace airlock::tunnel
