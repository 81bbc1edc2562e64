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

// ---- A server that serves 2026-07-28: asked server/discover first, then used without a session.

class Stateless : public ::testing::Test {
 protected:
  // Starts with `first` (the effects that asked for a start) and answers the probe with `answer`.
  Effects discover(Effects first, std::string_view answer) {
    auto starts = only<Start>(first);
    EXPECT_EQ(starts.size(), 1u);
    auto probe = only<Transmit>(core.on_transport_open(starts.at(0).attempt));
    EXPECT_EQ(probe.size(), 1u);
    EXPECT_EQ(probe.at(0).message.at("method"), "server/discover");
    const auto& meta = probe.at(0).message.at("params").at("_meta");
    EXPECT_EQ(meta.at("io.modelcontextprotocol/protocolVersion"), "2026-07-28");
    EXPECT_EQ(meta.at("io.modelcontextprotocol/clientInfo").at("name"), "agent");
    auto reply = parse(answer);
    reply["jsonrpc"] = "2.0";
    reply["id"] = probe.at(0).message.at("id");
    return core.on_upstream(reply, std::nullopt, now);
  }
  static constexpr std::string_view kModern =
      R"({"result":{"resultType":"complete","supportedVersions":["2026-07-28"],
          "capabilities":{"tools":{"listChanged":true}},
          "_meta":{"io.modelcontextprotocol/serverInfo":{"name":"crm","version":"2"}}}})";
  json::object response_to(int64_t id) {
    return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", json::object{}}};
  }
  Clock::time_point now = Clock::time_point{} + 1h;
  SessionCore core{"crm", parse(R"({"capabilities":{"elicitation":{}},
                             "clientInfo":{"name":"agent","version":"1"}})"),
                   SessionCore::kRestartPolicy, 7, Mode{.discover = true}};
};

TEST_F(Stateless, AServerOfTheNewRevisionGetsNoSessionAndEveryRequestCarriesTheEnvelope) {
  auto up = discover(core.send(parse(R"({"jsonrpc":"2.0","id":"a","method":"tools/call",
                                         "params":{"name":"find","arguments":{}}})"),
                               now),
                     kModern);
  EXPECT_TRUE(core.stateless());
  EXPECT_EQ(only<Ready>(up).at(0).protocol_version, "2026-07-28");
  EXPECT_EQ(core.server_init().at("serverInfo").at("name"), "crm");
  auto sent = only<Transmit>(up);
  ASSERT_EQ(sent.size(), 1u) << "no initialize, no notifications/initialized";
  EXPECT_EQ(sent[0].message.at("method"), "tools/call");
  const auto& meta = sent[0].message.at("params").at("_meta");
  EXPECT_EQ(meta.at("io.modelcontextprotocol/protocolVersion"), "2026-07-28");
  EXPECT_EQ(meta.at("io.modelcontextprotocol/clientCapabilities"), parse(R"({"elicitation":{}})"));
  // What the revision no longer has is answered here; a log level rides on later requests.
  auto ping = only<Deliver>(core.send(parse(R"({"jsonrpc":"2.0","id":2,"method":"ping"})"), now));
  ASSERT_EQ(ping.size(), 1u);
  EXPECT_EQ(ping[0].message.at("id"), 2);
  EXPECT_TRUE(ping[0].message.contains("result"));
  auto level = core.send(parse(R"({"jsonrpc":"2.0","id":3,"method":"logging/setLevel",
                                   "params":{"level":"debug"}})"),
                         now);
  EXPECT_TRUE(only<Transmit>(level).empty());
  EXPECT_TRUE(only<Deliver>(level).at(0).message.contains("result"));
  auto sub = only<Deliver>(core.send(parse(R"({"jsonrpc":"2.0","id":4,
      "method":"resources/subscribe","params":{"uri":"x"}})"),
                                     now));
  EXPECT_EQ(sub.at(0).message.at("error").at("code"), -32601);
  auto list =
      only<Transmit>(core.send(parse(R"({"jsonrpc":"2.0","id":5,"method":"tools/list"})"), now));
  EXPECT_EQ(list.at(0).message.at("params").at("_meta").at("io.modelcontextprotocol/logLevel"),
            "debug");
  // Client notifications mean nothing to such a server.
  EXPECT_TRUE(
      core.send(parse(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"), now).empty());
}

TEST_F(Stateless, AServerThatRefusesTheProbeGetsASessionAndIsProbedAgainOnlyAfterAFailure) {
  auto up = discover(core.send(parse(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})"), now),
                     R"({"error":{"code":-32601,"message":"Method not found"}})");
  auto init = only<Transmit>(up);
  ASSERT_EQ(init.size(), 1u);
  EXPECT_EQ(init[0].message.at("method"), "initialize");
  json::object answer{{"jsonrpc", "2.0"},
                      {"id", init[0].message.at("id")},
                      {"result", parse(R"({"protocolVersion":"2025-11-25","capabilities":{}})")}};
  auto ready = core.on_upstream(answer, std::nullopt, now);
  EXPECT_FALSE(core.stateless());
  EXPECT_EQ(only<Ready>(ready).at(0).protocol_version, "2025-11-25");
  auto again = core.on_lost("connection reset", now);
  auto starts = only<Start>(again);
  ASSERT_EQ(starts.size(), 1u) << "tools/list is retried on a new session";
  auto open = only<Transmit>(core.on_transport_open(starts[0].attempt));
  EXPECT_EQ(open.at(0).message.at("method"), "initialize");
  // A start that fails (the server may have been replaced) asks again the time after.
  core.on_start_failed(starts[0].attempt, "initialize was refused", now);
  auto retry = only<Start>(
      core.send(parse(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})"), now + 1min));
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(only<Transmit>(core.on_transport_open(retry[0].attempt)).at(0).message.at("method"),
            "server/discover");
  // A server listing only older revisions is no different.
  SessionCore old{"old", json::object{}, SessionCore::kRestartPolicy, 7, Mode{.discover = true}};
  auto first = old.send(parse(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})"), now);
  auto probe = only<Transmit>(old.on_transport_open(only<Start>(first).at(0).attempt));
  json::object reply{{"jsonrpc", "2.0"},
                     {"id", probe.at(0).message.at("id")},
                     {"result", parse(R"({"supportedVersions":["2025-11-25"]})")}};
  EXPECT_EQ(only<Transmit>(old.on_upstream(reply, std::nullopt, now)).at(0).message.at("method"),
            "initialize");
}

TEST_F(Stateless, InputRequiredBecomesRequestsForTheAgentAndTheirAnswersARetry) {
  auto up = discover(core.send(parse(R"({"jsonrpc":"2.0","id":"call","method":"tools/call",
                                         "params":{"name":"ask","arguments":{"q":1}}})"),
                               now),
                     kModern);
  const int64_t id = only<Transmit>(up).at(0).message.at("id").as_int64();
  json::object input{{"jsonrpc", "2.0"},
                     {"id", id},
                     {"result", parse(R"({"resultType":"input_required","requestState":"opaque-1",
                   "inputRequests":{
                     "who":{"method":"elicitation/create","params":{"message":"Name?"}},
                     "where":{"method":"roots/list"}}})")}};
  auto asked = only<Deliver>(core.on_upstream(input, std::nullopt, now));
  ASSERT_EQ(asked.size(), 2u);
  for (const auto& d : asked) {
    EXPECT_EQ(d.related, json::value("call")) << "related to the agent's call";
    EXPECT_TRUE(d.message.contains("id")) << "a request the agent answers";
  }
  EXPECT_EQ(asked[0].message.at("method"), "elicitation/create");
  EXPECT_EQ(asked[0].message.at("params").at("message"), "Name?");
  EXPECT_EQ(asked[1].message.at("method"), "roots/list");
  // The first answer alone sends nothing; the second completes the round.
  json::object a{{"jsonrpc", "2.0"},
                 {"id", asked[0].message.at("id")},
                 {"result", parse(R"({"action":"accept","content":{"name":"Ada"}})")}};
  EXPECT_TRUE(core.send(a, now).empty());
  json::object b{
      {"jsonrpc", "2.0"}, {"id", asked[1].message.at("id")}, {"result", parse(R"({"roots":[]})")}};
  auto retry = only<Transmit>(core.send(b, now));
  ASSERT_EQ(retry.size(), 1u);
  const auto& params = retry[0].message.at("params");
  EXPECT_EQ(retry[0].message.at("id"), id);
  EXPECT_EQ(params.at("name"), "ask");
  EXPECT_EQ(params.at("arguments"), parse(R"({"q":1})"));
  EXPECT_EQ(params.at("requestState"), "opaque-1");
  EXPECT_EQ(params.at("inputResponses").at("who").at("content").at("name"), "Ada");
  EXPECT_EQ(params.at("inputResponses").at("where"), parse(R"({"roots":[]})"));
  EXPECT_EQ(params.at("_meta").at("io.modelcontextprotocol/protocolVersion"), "2026-07-28");
  // An answer to the same input request again is nobody's.
  EXPECT_TRUE(core.send(b, now).empty());
  auto done = only<Deliver>(core.on_upstream(
      json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", parse(R"({"content":[]})")}},
      std::nullopt, now));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].message.at("id"), "call");
  EXPECT_EQ(core.pending(), 0u);
}

TEST_F(Stateless, ARefusedInputOrAMalformedRoundFailsTheCall) {
  auto up = discover(core.send(parse(R"({"jsonrpc":"2.0","id":7,"method":"tools/call",
                                         "params":{"name":"ask"}})"),
                               now),
                     kModern);
  const int64_t id = only<Transmit>(up).at(0).message.at("id").as_int64();
  auto asked = only<Deliver>(core.on_upstream(
      json::object{{"jsonrpc", "2.0"},
                   {"id", id},
                   {"result", parse(R"({"resultType":"input_required","inputRequests":{
                      "k":{"method":"sampling/createMessage","params":{}}}})")}},
      std::nullopt, now));
  json::object refusal{{"jsonrpc", "2.0"},
                       {"id", asked.at(0).message.at("id")},
                       {"error", parse(R"({"code":-1,"message":"user declined"})")}};
  auto failed = only<Deliver>(core.send(refusal, now));
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].message.at("id"), 7);
  EXPECT_NE(json::serialize(failed[0].message.at("error")).find("user declined"),
            std::string::npos);
  EXPECT_EQ(core.pending(), 0u);
  // A round that names no method is the server's error, said to the agent.
  auto up2 = core.send(parse(R"({"jsonrpc":"2.0","id":8,"method":"tools/call",
                                 "params":{"name":"ask"}})"),
                       now);
  const int64_t id2 = only<Transmit>(up2).at(0).message.at("id").as_int64();
  auto bad = only<Deliver>(core.on_upstream(
      json::object{
          {"jsonrpc", "2.0"},
          {"id", id2},
          {"result", parse(R"({"resultType":"input_required","inputRequests":{"k":{}}})")}},
      std::nullopt, now));
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].message.at("id"), 8);
  EXPECT_NE(json::serialize(bad[0].message).find("names no method"), std::string::npos);
}

TEST_F(Stateless, ACancellationAbandonsTheRequestsStream) {
  auto up = discover(core.send(parse(R"({"jsonrpc":"2.0","id":"slow","method":"tools/call",
                                         "params":{"name":"wait"}})"),
                               now),
                     kModern);
  const int64_t id = only<Transmit>(up).at(0).message.at("id").as_int64();
  auto cancel = core.send(parse(R"({"jsonrpc":"2.0","method":"notifications/cancelled",
                                    "params":{"requestId":"slow"}})"),
                          now);
  EXPECT_TRUE(only<Transmit>(cancel).empty()) << "the revision has no notifications/cancelled";
  ASSERT_EQ(only<Abandon>(cancel).size(), 1u);
  EXPECT_EQ(only<Abandon>(cancel)[0].id, id);
  EXPECT_TRUE(core.on_upstream(response_to(id), std::nullopt, now).empty());
}

TEST_F(Stateless, TheInventorySessionListensForListChanges) {
  SessionCore inventory{"crm", json::object{}, SessionCore::kRestartPolicy, 7,
                        Mode{.discover = true, .listen = true}};
  Effects effects;
  inventory.own_request("tools/list", {}, now, effects);
  auto probe = only<Transmit>(inventory.on_transport_open(only<Start>(effects).at(0).attempt));
  auto reply = parse(kModern);
  reply["jsonrpc"] = "2.0";
  reply["id"] = probe.at(0).message.at("id");
  auto sent = only<Transmit>(inventory.on_upstream(reply, std::nullopt, now));
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].message.at("method"), "tools/list");
  EXPECT_EQ(sent[1].message.at("method"), "subscriptions/listen");
  EXPECT_EQ(sent[1].message.at("params").at("notifications"),
            parse(R"({"toolsListChanged":true})"));
  const json::value listen = sent[1].message.at("id");
  EXPECT_TRUE(inventory
                  .on_upstream(parse(R"({"jsonrpc":"2.0",
                      "method":"notifications/subscriptions/acknowledged","params":{}})"),
                               listen, now)
                  .empty());
  auto changed = only<Deliver>(inventory.on_upstream(
      parse(R"({"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{}})"), listen,
      now));
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_FALSE(changed[0].related) << "a list change concerns no call";
}

}  // namespace
}  // namespace airlock::tunnel
