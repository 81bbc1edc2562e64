// GatewayCore replayed: agent and connector messages in, effects out — routing and the
// answer's way back, repeated request ids, deadlines and progress, server requests relayed
// both ways, how an ended stream answers its calls, refusals and their audit records, idle
// sessions and list changes.
#include "controlplane/gateway_core.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "common/mcp_revision.h"
#include "common/stream_contract.h"

namespace airlock::controlplane {
namespace {
using namespace gateway;
using namespace std::chrono_literals;
namespace rpc = jsonrpc;

json::object parse(std::string_view text) { return boost::json::parse(text).as_object(); }

rpc::Message message(std::string_view text) {
  std::string error;
  auto m = rpc::parse(text, error);
  EXPECT_TRUE(m) << error;
  return *m;
}

template <class T>
std::vector<T> only(const Effects& effects) {
  std::vector<T> out;
  for (const auto& e : effects) {
    if (auto* t = std::get_if<T>(&e)) out.push_back(*t);
  }
  return out;
}

// The one final answer among `effects`, parsed.
json::object answer(const Effects& effects, uint64_t exchange) {
  json::object found;
  int finals = 0;
  for (const auto& a : only<ToAgent>(effects)) {
    if (a.exchange == exchange && a.final) {
      found = parse(a.message);
      ++finals;
    }
  }
  EXPECT_EQ(finals, 1) << "exchange " << exchange;
  return found;
}

std::string line(std::string_view message, std::optional<json::value> related = std::nullopt) {
  std::string l = proto::serialize_line(std::string(message), related, 0);
  l.pop_back();  // the shell hands lines without their terminator
  return l;
}

class GatewayCoreTest : public ::testing::Test {
 protected:
  GatewayCoreTest() {
    auto bindings = std::make_shared<std::vector<Binding>>();
    Binding crm;
    crm.name = "crm";
    crm.connector = {proto::ConnectorKind::kTunnel, "sales"};
    crm.server = "crm";
    crm.timeout = 1000ms;
    crm.max_timeout = 3000ms;
    bindings->push_back(crm);
    Binding box;
    box.name = "box";
    box.connector = {proto::ConnectorKind::kSandbox, "tool-box"};
    box.server = std::string(proto::kSandboxToolset);
    bindings->push_back(box);
    Binding pay;
    pay.name = "pay";
    pay.connector = {proto::ConnectorKind::kTunnel, "sales"};
    pay.server = "pay";
    pay.agent_credentials = {{"alice", "pay-alice"}};
    bindings->push_back(pay);
    inventories[crm.connector].servers.push_back(parse(
        R"({"name":"crm","status":"ok","tools":[{"name":"find"},{"name":"update","inputSchema":{
              "type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},
              "where":{"type":"object","properties":{"zone":{"type":"integer",
                                                             "x-mcp-header":"Zone"}}}}}}],
            "resources":[{"uri":"crm://accounts","name":"accounts"}]})"));
    inventories[crm.connector].servers.push_back(
        parse(R"({"name":"pay","status":"ok","tools":[{"name":"charge"}]})"));
    inventories[box.connector].servers.push_back(
        parse(R"({"name":"toolset","status":"ok","tools":[{"name":"bash"}]})"));
    view(bindings, inventories);
  }

  void view(std::shared_ptr<std::vector<Binding>> bindings,
            const std::map<ConnectorRef, ConnectorInventory>& live) {
    std::vector<std::string> conflicts;
    CatalogView v;
    v.catalog = std::make_shared<Catalog>(Catalog::build(*bindings, live, conflicts));
    v.bindings = bindings;
    v.inventories = std::make_shared<std::map<ConnectorRef, ConnectorInventory>>(inventories);
    last_catalog = core.set_catalog(std::move(v));
  }

  // Opens session `id` for `agent` with `scope`; the client supports sampling only.
  void open(const std::string& id, const std::string& agent = "bob",
            std::vector<std::string> scope = {"*"}) {
    auto init = core.initialize(id, "tag-" + id, {agent, std::move(scope)},
                                message(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
          "protocolVersion":"2025-06-18","capabilities":{"sampling":{}},
          "clientInfo":{"name":"agent","version":"1"}}})"),
                                ++exchange, now);
    EXPECT_EQ(answer(init, exchange).at("result").at("protocolVersion"), "2025-06-18");
    core.agent_message(id, message(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"), 0,
                       0, now);
  }

  Effects request(const std::string& id, std::string_view text, uint64_t& x) {
    x = ++exchange;
    return core.agent_message(id, message(text), text.size(), x, now);
  }

  // A request answered at once: its answer.
  json::object ask(const std::string& id, std::string_view text) {
    uint64_t x = 0;
    auto out = request(id, text, x);
    return answer(out, x);
  }

  Clock::time_point now = Clock::time_point{} + 1h;
  uint64_t exchange = 0;
  std::map<ConnectorRef, ConnectorInventory> inventories;
  Effects last_catalog;
  GatewayCore core{GatewayCore::Limits{1, 10, 60000ms, "test-state-key"}};
};

TEST_F(GatewayCoreTest, ACallGoesToItsServerAndItsAnswerBackToItsExchange) {
  open("s1");
  uint64_t x = 0;
  auto sent = request("s1", R"({"jsonrpc":"2.0","id":7,"method":"tools/call",
                               "params":{"name":"find","arguments":{"q":"acme"}}})",
                      x);
  auto opens = only<OpenUpstream>(sent);
  ASSERT_EQ(opens.size(), 1u);
  EXPECT_EQ(opens[0].connector.name, "sales");
  proto::McpStreamOpen meta;
  std::string error;
  ASSERT_TRUE(proto::parse_mcp_open(opens[0].meta, meta, error)) << error;
  EXPECT_EQ(meta.server, "crm");
  EXPECT_EQ(meta.agent, "bob");
  EXPECT_EQ(meta.session, "tag-s1");
  EXPECT_EQ(meta.client.at("protocolVersion"), "2025-06-18");
  EXPECT_TRUE(meta.client.at("capabilities").as_object().contains("sampling"));
  auto up = only<SendUpstream>(sent);
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(up[0].stream, opens[0].stream);
  EXPECT_EQ(parse(up[0].message).at("params").at("name"), "find");
  ASSERT_EQ(only<ArmDeadline>(sent).size(), 1u);
  EXPECT_EQ(only<ArmDeadline>(sent)[0].at, now + 1000ms);
  EXPECT_EQ(only<ToAgent>(sent).size(), 0u) << "nothing for the agent before the server answers";
  EXPECT_EQ(core.calls_of("s1"), 1u);

  now += 250ms;
  auto back = core.upstream_line(
      "s1", opens[0].stream, line(R"({"jsonrpc":"2.0","id":7,"result":{"content":[]}})", 7), now);
  EXPECT_EQ(answer(back, x).at("id"), 7);
  auto records = only<Record>(back);
  ASSERT_EQ(records.size(), 1u);
  const AuditRecord& r = records[0].record;
  EXPECT_TRUE(records[0].metered);
  EXPECT_EQ(r.type, AuditType::kCall);
  EXPECT_EQ(r.actor, "bob");
  EXPECT_EQ(r.session, "tag-s1");
  EXPECT_EQ(r.target, "find");
  EXPECT_EQ(r.binding, "crm");
  EXPECT_EQ(r.connector, "tunnel/sales");
  EXPECT_EQ(r.server, "crm");
  EXPECT_EQ(r.outcome, "ok");
  EXPECT_EQ(r.duration_ms, 250);
  EXPECT_GT(r.bytes_in, 0u);
  EXPECT_EQ(r.bytes_out, only<ToAgent>(back)[0].message.size());
  EXPECT_EQ(core.calls_of("s1"), 0u);

  // The second call reuses the stream; a repeated answer is ignored.
  auto again = request("s1", R"({"jsonrpc":"2.0","id":8,"method":"tools/call",
                                "params":{"name":"update"}})",
                       x);
  EXPECT_TRUE(only<OpenUpstream>(again).empty());
  EXPECT_EQ(only<SendUpstream>(again).size(), 1u);
  auto late = core.upstream_line("s1", opens[0].stream,
                                 line(R"({"jsonrpc":"2.0","id":7,"result":{}})"), now);
  EXPECT_TRUE(late.empty());
}

TEST_F(GatewayCoreTest, RepeatedRequestIdsAreToldApartByTheirExchange) {
  open("s1");
  uint64_t first = 0, second = 0;
  auto a = request(
      "s1", R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"find"}})", first);
  const std::string stream = only<OpenUpstream>(a).at(0).stream;
  auto b = request(
      "s1", R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"find"}})", second);
  EXPECT_EQ(answer(b, second).at("error").at("message"),
            "request id is already in use in this session");
  EXPECT_TRUE(only<SendUpstream>(b).empty());
  auto back =
      core.upstream_line("s1", stream, line(R"({"jsonrpc":"2.0","id":1,"result":{}})"), now);
  EXPECT_TRUE(answer(back, first).contains("result"));
}

TEST_F(GatewayCoreTest, ProgressExtendsTheDeadlineUpToTheHardMaximum) {
  open("s1");
  uint64_t x = 0;
  auto sent = request("s1", R"({"jsonrpc":"2.0","id":"c","method":"tools/call",
                               "params":{"name":"find","_meta":{"progressToken":"p1"}}})",
                      x);
  const std::string stream = only<OpenUpstream>(sent).at(0).stream;
  const auto start = now;
  // Progress every 900 ms keeps it alive — until the 3 s maximum.
  for (int i = 1; i <= 3; ++i) {
    now = start + i * 900ms;
    auto p =
        core.upstream_line("s1", stream, line(R"({"jsonrpc":"2.0","method":"notifications/progress",
                 "params":{"progressToken":"p1","progress":1}})"),
                           now);
    auto to = only<ToAgent>(p);
    ASSERT_EQ(to.size(), 1u);
    EXPECT_EQ(to[0].exchange, x) << "progress goes with its call";
    EXPECT_FALSE(to[0].final);
    EXPECT_TRUE(only<ToAgent>(core.time_passed(now)).empty());
  }
  EXPECT_EQ(core.next_deadline(), start + 3000ms);
  now = start + 2999ms;
  EXPECT_TRUE(only<ToAgent>(core.time_passed(now)).empty());
  now = start + 3000ms;
  auto expired = core.time_passed(now);
  auto cancel = only<SendUpstream>(expired);
  ASSERT_EQ(cancel.size(), 1u);
  EXPECT_EQ(parse(cancel[0].message).at("method"), "notifications/cancelled");
  EXPECT_EQ(parse(cancel[0].message).at("params").at("requestId"), "c");
  EXPECT_EQ(answer(expired, x).at("error").at("code"), rpc::kRequestTimeout);
  EXPECT_EQ(only<Record>(expired).at(0).record.error_class, "timeout");
  EXPECT_FALSE(core.next_deadline());
}

TEST_F(GatewayCoreTest, AServersRequestTravelsUnderTheSessionsOwnIdAndItsAnswerBack) {
  open("s1");
  uint64_t x = 0;
  auto sent = request(
      "s1", R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"find"}})", x);
  const std::string stream = only<OpenUpstream>(sent).at(0).stream;
  auto asked = core.upstream_line(
      "s1", stream,
      line(R"({"jsonrpc":"2.0","id":42,"method":"sampling/createMessage","params":{}})", 3), now);
  auto to = only<ToAgent>(asked);
  ASSERT_EQ(to.size(), 1u);
  EXPECT_EQ(to[0].exchange, x) << "on the call's answer stream";
  const json::value relayed_id = parse(to[0].message).at("id");
  EXPECT_EQ(relayed_id, "airlock-srv-1");

  // The client declared no elicitation: the server is told at once, the agent never sees it.
  auto refused = core.upstream_line(
      "s1", stream, line(R"({"jsonrpc":"2.0","id":43,"method":"elicitation/create"})", 3), now);
  EXPECT_TRUE(only<ToAgent>(refused).empty());
  ASSERT_EQ(only<SendUpstream>(refused).size(), 1u);
  EXPECT_EQ(parse(only<SendUpstream>(refused)[0].message).at("error").at("code"),
            rpc::kMethodNotFound);

  now += 40ms;
  auto answered = core.agent_message(
      "s1", message(R"({"jsonrpc":"2.0","id":"airlock-srv-1","result":{"role":"assistant"}})"), 50,
      0, now);
  auto up = only<SendUpstream>(answered);
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(parse(up[0].message).at("id"), 42) << "under the server's own id";
  auto records = only<Record>(answered);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].record.type, AuditType::kServerRequest);
  EXPECT_EQ(records[0].record.target, "find") << "the call it came in";
  EXPECT_EQ(records[0].record.duration_ms, 40);
  EXPECT_FALSE(records[0].metered);
  // A second answer under the same id is no one's.
  EXPECT_TRUE(core.agent_message("s1",
                                 message(R"({"jsonrpc":"2.0","id":"airlock-srv-1","result":{}})"),
                                 10, 0, now)
                  .empty());
}

TEST_F(GatewayCoreTest, AnAnswerGoesOnlyToTheStreamThatAsked) {
  open("s1");
  uint64_t x = 0;
  auto sent = request(
      "s1", R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"find"}})", x);
  const std::string stream = only<OpenUpstream>(sent).at(0).stream;
  core.upstream_line("s1", stream,
                     line(R"({"jsonrpc":"2.0","id":1,"method":"sampling/createMessage"})", 3), now);
  core.upstream_closed("s1", stream, {StreamEnd::Kind::kEnded, "it stopped"}, now);
  // A new stream under the same key, which never asked anything.
  auto again = request(
      "s1", R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"find"}})", x);
  ASSERT_EQ(only<OpenUpstream>(again).size(), 1u);
  auto answered = core.agent_message(
      "s1", message(R"({"jsonrpc":"2.0","id":"airlock-srv-1","result":{}})"), 10, 0, now);
  EXPECT_TRUE(only<SendUpstream>(answered).empty());
  EXPECT_EQ(only<Record>(answered).size(), 1u) << "the agent's answer is still audited";
}

TEST_F(GatewayCoreTest, AStreamThatEndsAnswersItsCallsByHow) {
  struct Case {
    StreamEnd::Kind kind;
    std::string_view says;
  };
  const Case cases[] = {
      {StreamEnd::Kind::kNeverOpened, "tools/call 'find' is unavailable: not connected"},
      {StreamEnd::Kind::kLinkLost,
       "disconnected while tools/call 'find' was in flight; its "
       "outcome is unknown"},
      {StreamEnd::Kind::kEnded, "ended while tools/call 'find' was in flight: not connected"},
  };
  int n = 0;
  for (const auto& c : cases) {
    const std::string id = "s" + std::to_string(++n);
    open(id);
    uint64_t x = 0;
    auto sent = request(
        id, R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"find"}})", x);
    auto ended = core.upstream_closed(id, only<OpenUpstream>(sent).at(0).stream,
                                      {c.kind, "not connected"}, now);
    const std::string text(answer(ended, x).at("error").at("message").as_string());
    EXPECT_NE(text.find(c.says), std::string::npos) << text;
    EXPECT_EQ(only<Record>(ended).at(0).record.error_class, "unavailable");
  }
  // Refused before anything ran: a tool call gets the reason as a tool error.
  open("s9");
  uint64_t x = 0;
  auto sent = request(
      "s9", R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bash"}})", x);
  auto refused = core.upstream_closed("s9", only<OpenUpstream>(sent).at(0).stream,
                                      {StreamEnd::Kind::kRefused, "every session is in use"}, now);
  auto a = answer(refused, x);
  EXPECT_EQ(a.at("result").at("isError"), true);
  EXPECT_EQ(a.at("result").at("content").at(0).at("text"), "every session is in use");
  // A refused stream lost no sandbox session: the next call simply opens another.
  auto next = request(
      "s9", R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"bash"}})", x);
  EXPECT_EQ(only<OpenUpstream>(next).size(), 1u);
}

TEST_F(GatewayCoreTest, ALostSandboxSessionIsToldToTheNextCallOnce) {
  open("s1");
  uint64_t x = 0;
  auto sent = request(
      "s1", R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bash"}})", x);
  const std::string stream = only<OpenUpstream>(sent).at(0).stream;
  core.upstream_line("s1", stream, line(R"({"jsonrpc":"2.0","id":1,"result":{}})"), now);
  core.upstream_closed("s1", stream, {StreamEnd::Kind::kLinkLost, "link closed"}, now);
  auto told = request(
      "s1", R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"bash"}})", x);
  EXPECT_TRUE(only<OpenUpstream>(told).empty()) << "not silently a fresh sandbox";
  auto a = answer(told, x);
  EXPECT_EQ(a.at("result").at("isError"), true);
  EXPECT_NE(std::string(a.at("result").at("content").at(0).at("text").as_string())
                .find("sandbox 'tool-box' disconnected"),
            std::string::npos);
  auto fresh = request(
      "s1", R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"bash"}})", x);
  EXPECT_EQ(only<OpenUpstream>(fresh).size(), 1u) << "told once; then a new sandbox session";
}

TEST_F(GatewayCoreTest, RefusalsAreAnsweredAndRecordedWithTheirReason) {
  open("narrow", "bob", {"find"});
  uint64_t x = 0;
  auto out = request(
      "narrow", R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"update"}})", x);
  EXPECT_TRUE(only<OpenUpstream>(out).empty());
  EXPECT_EQ(answer(out, x).at("error").at("code"), rpc::kInvalidParams);
  auto r = only<Record>(out).at(0).record;
  EXPECT_EQ(r.type, AuditType::kToolRefused);
  EXPECT_EQ(r.outcome, "refused");
  EXPECT_EQ(r.detail.at("reason"), "outside the agent key's scope");

  // `pay` maps a credential to alice only.
  open("s2");
  out = request("s2",
                R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"charge"}})", x);
  EXPECT_TRUE(only<OpenUpstream>(out).empty()) << "no stream without a credential";
  EXPECT_EQ(answer(out, x).at("error").at("code"), rpc::kUpstreamUnavailable);
  r = only<Record>(out).at(0).record;
  EXPECT_EQ(r.type, AuditType::kToolRefused);
  EXPECT_NE(
      std::string(r.detail.at("reason").as_string()).find("maps no credential to agent 'bob'"),
      std::string::npos);

  // Unknown things are answered, audited as calls, and refuse nothing.
  out = request(
      "s2", R"({"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"x://y"}})", x);
  EXPECT_EQ(answer(out, x).at("error").at("code"), rpc::kResourceNotFound);
  r = only<Record>(out).at(0).record;
  EXPECT_EQ(r.type, AuditType::kCall);
  EXPECT_EQ(r.error_class, "not_found");
}

TEST_F(GatewayCoreTest, CancellingACallTellsItsServerAndAnswersIt) {
  open("s1");
  uint64_t x = 0;
  auto sent = request(
      "s1", R"({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"find"}})", x);
  auto cancelled = core.agent_message(
      "s1",
      message(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}})"),
      10, 0, now);
  EXPECT_EQ(parse(only<SendUpstream>(cancelled).at(0).message).at("method"),
            "notifications/cancelled");
  EXPECT_EQ(answer(cancelled, x).at("error").at("message"), "cancelled by the client");
  EXPECT_EQ(only<Record>(cancelled).at(0).record.error_class, "cancelled");
  EXPECT_EQ(core.calls_of("s1"), 0u);
}

TEST_F(GatewayCoreTest, EndingASessionAnswersWhatIsInFlightAndClosesItsStreams) {
  open("s1");
  uint64_t x = 0;
  auto sent = request(
      "s1", R"({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"find"}})", x);
  auto ended = core.end_session("s1", "the client ended the session", now);
  EXPECT_EQ(answer(ended, x).at("error").at("message"),
            "session ended: the client ended the session");
  EXPECT_EQ(only<CloseUpstream>(ended).size(), 1u);
  ASSERT_EQ(only<SessionEnded>(ended).size(), 1u);
  EXPECT_TRUE(std::holds_alternative<SessionEnded>(ended.back())) << "the last word";
  EXPECT_EQ(core.session_count(), 0u);
  EXPECT_TRUE(core.upstream_line("s1", only<OpenUpstream>(sent).at(0).stream,
                                 line(R"({"jsonrpc":"2.0","id":5,"result":{}})"), now)
                  .empty());
  EXPECT_FALSE(core.touch("s1", "bob", now));
}

TEST_F(GatewayCoreTest, AnIdleSessionEndsUnlessItsAgentListens) {
  open("quiet");
  open("listening");
  EXPECT_FALSE(core.touch("listening", "mallory", now)) << "someone else's session is unknown";
  core.listening("listening", true);
  now += 61s;
  auto swept = core.time_passed(now);
  auto ended = only<SessionEnded>(swept);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].session, "quiet");
  core.listening("listening", false);
  EXPECT_EQ(only<SessionEnded>(core.time_passed(now)).size(), 1u);
}

TEST_F(GatewayCoreTest, ListsArePagedAndChangesReachTheSessionsThatSeeThem) {
  open("all");
  open("crm-only", "bob", {"find", "update"});
  auto first = ask("all", R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  ASSERT_EQ(first.at("result").at("tools").as_array().size(), 1u) << "page size 1";
  const std::string cursor(first.at("result").at("nextCursor").as_string());
  auto second = ask("all", R"({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":")" +
                               cursor + R"("}})");
  EXPECT_NE(second.at("result").at("tools").at(0), first.at("result").at("tools").at(0));
  auto bad = ask(
      "all", R"({"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"b3o5OTk5"}})");
  EXPECT_EQ(bad.at("error").at("code"), rpc::kInvalidParams);

  // The sandbox goes: only the session that saw `bash` is told.
  auto live = inventories;
  live.erase(ConnectorRef{proto::ConnectorKind::kSandbox, "tool-box"});
  view(std::make_shared<std::vector<Binding>>(*core.catalog().bindings), live);
  auto told = only<ToAgent>(last_catalog);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].session, "all");
  EXPECT_EQ(told[0].exchange, 0u) << "on the GET stream";
  EXPECT_EQ(parse(told[0].message).at("method"), "notifications/tools/list_changed");
  // And a call to it now says it is unavailable, and why.
  auto gone =
      ask("all", R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"bash"}})");
  EXPECT_NE(std::string(gone.at("error").at("message").as_string()).find("'bash' is unavailable"),
            std::string::npos)
      << gone;
}

TEST_F(GatewayCoreTest, InitializeIsRefusedPastTheSessionLimitAndWithoutAVersion) {
  for (int i = 0; i < 10; ++i) open("s" + std::to_string(i));
  auto full = core.initialize(
      "s10", "t", {"bob", {"*"}},
      message(
          R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})"),
      99, now);
  ASSERT_EQ(only<ToAgent>(full).size(), 1u);
  EXPECT_EQ(only<ToAgent>(full)[0].http_status, 503);
  EXPECT_EQ(core.session_count(), 10u);
  auto bare =
      core.initialize("s11", "t", {"bob", {"*"}},
                      message(R"({"jsonrpc":"2.0","id":0,"method":"initialize"})"), 100, now);
  EXPECT_EQ(answer(bare, 100).at("error").at("code"), rpc::kInvalidParams);
}

// ---- MCP 2026-07-28 ---------------------------------------------------------------------------

constexpr const char* kMeta =
    R"("_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",)"
    R"("io.modelcontextprotocol/clientCapabilities":{},"progressToken":"p"})";

class ModernTest : public GatewayCoreTest {
 protected:
  Effects modern(std::string_view text, uint64_t x, RequestHeaders h = {}) {
    auto msg = message(text);
    if (h.protocol_version.empty()) h.protocol_version = "2026-07-28";
    if (h.method.empty()) h.method = std::string(msg.method());
    if (h.name.empty() && msg.params()) {
      auto* n = msg.params()->if_contains("name");
      if (!n) n = msg.params()->if_contains("uri");
      if (n && n->is_string()) h.name = std::string(n->as_string());
    }
    return core.modern_request({"bob", {"*"}}, h, std::move(msg), text.size(), x, now);
  }
  std::string call(int id, const char* tool) {
    return R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
           R"(,"method":"tools/call","params":{"name":")" + tool + R"(",)" + kMeta + "}}";
  }
};

TEST_F(ModernTest, RequestsShareTheAgentsContextButNotAnIdSpace) {
  auto a = modern(call(1, "find"), 101);
  auto b = modern(call(1, "find"), 102);
  ASSERT_EQ(only<OpenUpstream>(a).size(), 1u);
  EXPECT_TRUE(only<OpenUpstream>(b).empty()) << "one stream for the agent's requests";
  const std::string stream = only<OpenUpstream>(a)[0].stream;
  auto up_a = parse(only<SendUpstream>(a).at(0).message);
  auto up_b = parse(only<SendUpstream>(b).at(0).message);
  EXPECT_NE(up_a.at("id"), up_b.at("id")) << "the same agent id goes up under two";
  const auto& meta = up_a.at("params").at("_meta").as_object();
  EXPECT_FALSE(meta.contains("io.modelcontextprotocol/protocolVersion"))
      << "the modern keys are this hop's: " << meta;
  EXPECT_NE(meta.at("progressToken"), up_b.at("params").at("_meta").at("progressToken"));
  EXPECT_FALSE(core.touch("agent/bob", "bob", now)) << "no session id names a context";

  // Progress and answers come back to their own exchange, with the agent's id and token.
  auto progress = core.upstream_line(
      "agent/bob", stream,
      line(json::serialize(json::object{
          {"jsonrpc", "2.0"},
          {"method", "notifications/progress"},
          {"params",
           json::object{{"progressToken", up_b.at("params").at("_meta").at("progressToken")},
                        {"progress", 1}}}})),
      now);
  auto p = only<ToAgent>(progress);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].exchange, 102u);
  EXPECT_EQ(parse(p[0].message).at("params").at("progressToken"), "p");
  auto done = core.upstream_line(
      "agent/bob", stream,
      line(json::serialize(json::object{{"jsonrpc", "2.0"},
                                        {"id", up_a.at("id")},
                                        {"result", json::object{{"content", json::array{}}}}})),
      now);
  auto ans = answer(done, 101);
  EXPECT_EQ(ans.at("id"), 1);
  EXPECT_EQ(ans.at("result").at("resultType"), "complete");
}

TEST_F(ModernTest, ARequestIsCheckedAgainstItsMetaAndHeaders) {
  auto status = [](const Effects& e) { return only<ToAgent>(e).at(0).http_status; };
  auto code = [&](const Effects& e, uint64_t x) { return answer(e, x).at("error").at("code"); };
  auto none = modern(R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}})", 1);
  EXPECT_EQ(code(none, 1), rpc::kInvalidParams);
  EXPECT_EQ(status(none), 400);
  const std::string list =
      std::string(R"({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{)") + kMeta + "}}";
  auto old = modern(list, 2, {"2025-11-25", "", ""});
  EXPECT_EQ(code(old, 2), rpc::kHeaderMismatch);
  auto method = modern(list, 3, {"", "tools/call", ""});
  EXPECT_EQ(code(method, 3), rpc::kHeaderMismatch);
  auto name = modern(call(4, "find"), 4, {"", "", "update"});
  EXPECT_EQ(code(name, 4), rpc::kHeaderMismatch);
  EXPECT_EQ(status(name), 400);
  std::string future = list;
  future.replace(future.find("2026-07-28"), 10, "1900-01-01");
  auto unsupported = modern(future, 5, {"1900-01-01", "", ""});
  auto e = answer(unsupported, 5).at("error");
  EXPECT_EQ(e.at("code"), rpc::kUnsupportedProtocolVersion);
  EXPECT_EQ(e.at("data").at("requested"), "1900-01-01");
  EXPECT_EQ(e.at("data").at("supported").at(0), "2026-07-28");
  auto ping = modern(
      std::string(R"({"jsonrpc":"2.0","id":6,"method":"ping","params":{)") + kMeta + "}}", 6);
  EXPECT_EQ(code(ping, 6), rpc::kMethodNotFound);
  EXPECT_EQ(status(ping), 404);
  EXPECT_EQ(core.session_count(), 1u) << "the agent's context, once a request passed the checks";
}

TEST_F(ModernTest, HeadersAloneRefuseAToolOutsideTheScope) {
  auto refused =
      core.refuse_by_headers({"bob", {"find"}}, {"2026-07-28", "tools/call", "update"}, 9, now);
  ASSERT_EQ(only<ToAgent>(refused).size(), 1u);
  EXPECT_EQ(only<ToAgent>(refused)[0].http_status, 403);
  EXPECT_EQ(only<Record>(refused).at(0).record.type, AuditType::kToolRefused);
  EXPECT_TRUE(
      core.refuse_by_headers({"bob", {"find"}}, {"2026-07-28", "tools/call", "find"}, 9, now)
          .empty());
  EXPECT_TRUE(
      core.refuse_by_headers({"bob", {"find"}}, {"2026-07-28", "tools/list", ""}, 9, now).empty());
  EXPECT_EQ(mcp::decode_header_value("=?base64?ZmluZA==?="), "find");
  EXPECT_FALSE(mcp::decode_header_value("=?base64?!!?="));
  // What mcp-tunnel sends a 2026 server: plain ASCII as it is, anything else encoded.
  EXPECT_EQ(mcp::encode_header_value("find"), "find");
  for (std::string_view v : {"grüße", " padded", "=?base64?Zg==?=", "tab\there"}) {
    EXPECT_NE(mcp::encode_header_value(v), v);
    EXPECT_EQ(mcp::decode_header_value(mcp::encode_header_value(v)), v);
  }
}

TEST_F(ModernTest, ArgumentsTheToolMirrorsInHeadersMustMatchThem) {
  auto with = [&](const char* args, std::vector<std::pair<std::string, std::string>> params,
                  uint64_t x) {
    RequestHeaders h;
    h.params = std::move(params);
    return modern(R"({"jsonrpc":"2.0","id":)" + std::to_string(x) +
                      R"(,"method":"tools/call","params":{"name":"update","arguments":)" + args +
                      "," + kMeta + "}}",
                  x, h);
  };
  auto refusal = [](const Effects& e) -> std::string {
    auto t = only<ToAgent>(e);
    if (t.size() != 1 || t[0].http_status != 400) return "";
    auto error = parse(t[0].message).at("error");
    EXPECT_EQ(error.at("code"), -32020);
    return std::string(error.at("message").as_string());
  };
  const char* args = R"({"region":"grüße","where":{"zone":7}})";
  const std::string region = mcp::encode_header_value("grüße");
  // Plain or base64, header names in any case, unknown Mcp-Param-* ignored: accepted.
  EXPECT_EQ(
      only<SendUpstream>(with(args, {{"region", region}, {"zone", "7"}, {"other", "x"}}, 1)).size(),
      1u);
  EXPECT_NE(refusal(with(args, {{"region", region}}, 2)).find("Mcp-Param-Zone header is missing"),
            std::string::npos);
  EXPECT_NE(refusal(with(args, {{"region", "grusse"}, {"zone", "7"}}, 3))
                .find("Mcp-Param-Region header 'grusse' does not match the argument's 'grüße'"),
            std::string::npos);
  EXPECT_NE(refusal(with(args, {{"region", "=?base64?!!?="}, {"zone", "7"}}, 4))
                .find("not valid =?base64?"),
            std::string::npos);
  EXPECT_NE(refusal(with(R"({"region":"eu"})", {{"region", "eu"}, {"zone", "7"}}, 5))
                .find("Mcp-Param-Zone header is sent but the call has no such argument"),
            std::string::npos);
  EXPECT_EQ(only<SendUpstream>(with(R"({})", {}, 6)).size(), 1u) << "no argument, no header";
}

TEST_F(ModernTest, HeaderAnnotationsFollowTheRevisionsRules) {
  std::vector<mcp::HeaderParam> out;
  std::string error;
  auto check = [&](std::string_view schema, std::string_view args = "{}") {
    error.clear();
    return mcp::header_params(parse(schema), boost::json::parse(args), out, error);
  };
  ASSERT_TRUE(check(R"({"type":"object","properties":{"a":{"type":"boolean","x-mcp-header":"A"},
                        "b":{"type":"object","properties":{"c":{"type":"integer",
                                                               "x-mcp-header":"C"}}}}})",
                    R"({"a":false,"b":{"c":-7}})"))
      << error;
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].value, "false");
  EXPECT_EQ(out[1].header, "C");
  EXPECT_EQ(out[1].value, "-7");
  EXPECT_FALSE(check(R"({"type":"object","properties":{"l":{"type":"array",
                         "items":{"type":"string","x-mcp-header":"L"}}}})"));
  EXPECT_NE(error.find("properties alone"), std::string::npos) << error;
  EXPECT_FALSE(check(R"({"type":"object","properties":{"a":{"type":"string","x-mcp-header":"X"},
                         "b":{"type":"string","x-mcp-header":"x"}}})"));
  EXPECT_NE(error.find("used twice"), std::string::npos) << error;
  EXPECT_FALSE(
      check(R"({"type":"object","properties":{"n":{"type":"number","x-mcp-header":"N"}}})"));
  EXPECT_FALSE(
      check(R"({"type":"object","properties":{"s":{"type":"string","x-mcp-header":"a b"}}})"));
  EXPECT_FALSE(check(R"({"type":"object","oneOf":[{"properties":{"s":{"type":"string",
                         "x-mcp-header":"S"}}}]})"));
}

TEST_F(ModernTest, ClosingTheResponseStreamCancelsTheCall) {
  auto sent = modern(call(1, "find"), 7);
  const std::string upstream_id(parse(only<SendUpstream>(sent).at(0).message).at("id").as_string());
  auto gone = core.exchange_gone(7, now);
  auto cancel = only<SendUpstream>(gone);
  ASSERT_EQ(cancel.size(), 1u);
  EXPECT_EQ(parse(cancel[0].message).at("params").at("requestId").as_string(), upstream_id);
  EXPECT_EQ(only<Record>(gone).at(0).record.error_class, "cancelled");
  EXPECT_TRUE(core.exchange_gone(7, now).empty()) << "once";
}

TEST_F(ModernTest, ListenersAreAcknowledgedToldWhatTheyAskedAndEndedGracefully) {
  auto listen = [&](const char* filter, uint64_t x) {
    return modern(std::string(R"({"jsonrpc":"2.0","id":"sub-)") + std::to_string(x) +
                      R"(","method":"subscriptions/listen","params":{"notifications":)" + filter +
                      "," + kMeta + "}}",
                  x);
  };
  auto tools = only<ToAgent>(listen(R"({"toolsListChanged":true})", 20));
  ASSERT_EQ(tools.size(), 1u);
  EXPECT_FALSE(tools[0].final) << "the stream stays open";
  auto ack = parse(tools[0].message);
  EXPECT_EQ(ack.at("method"), "notifications/subscriptions/acknowledged");
  EXPECT_EQ(ack.at("params").at("_meta").at("io.modelcontextprotocol/subscriptionId"), "sub-20");
  listen(R"({"promptsListChanged":true})", 21);
  auto live = inventories;
  live.erase(ConnectorRef{proto::ConnectorKind::kSandbox, "tool-box"});
  view(std::make_shared<std::vector<Binding>>(*core.catalog().bindings), live);
  auto told = only<ToAgent>(last_catalog);
  ASSERT_EQ(told.size(), 1u) << "the tools changed, the prompts did not";
  EXPECT_EQ(told[0].exchange, 20u);
  EXPECT_EQ(
      parse(told[0].message).at("params").at("_meta").at("io.modelcontextprotocol/subscriptionId"),
      "sub-20");
  now += 2h;
  EXPECT_TRUE(only<SessionEnded>(core.time_passed(now)).empty()) << "a listener keeps it";
  auto ended = core.end_all("stopping", now);
  auto last = answer(ended, 20);
  EXPECT_EQ(last.at("id"), "sub-20");
  EXPECT_EQ(last.at("result").at("resultType"), "complete");
  answer(ended, 21);
}

TEST_F(ModernTest, AServersQuestionBecomesInputRequiredAndTheRetryAnswersIt) {
  const std::string asks =
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"find",)"
      R"("_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",)"
      R"("io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}}})";
  auto sent = modern(asks, 30);
  const std::string stream = only<OpenUpstream>(sent).at(0).stream;
  const json::value up_id = parse(only<SendUpstream>(sent).at(0).message).at("id");
  auto question = core.upstream_line(
      "agent/bob", stream,
      line(
          R"({"jsonrpc":"2.0","id":77,"method":"elicitation/create","params":{"message":"Sure?"}})",
          up_id),
      now);
  EXPECT_TRUE(only<SendUpstream>(question).empty()) << "the server's request waits";
  auto first = answer(question, 30).at("result").as_object();
  EXPECT_EQ(first.at("resultType"), "input_required");
  const auto& requests = first.at("inputRequests").as_object();
  ASSERT_EQ(requests.size(), 1u);
  const std::string key(requests.begin()->key());
  EXPECT_EQ(requests.at(key).at("method"), "elicitation/create");
  EXPECT_EQ(requests.at(key).at("params").at("message"), "Sure?");
  const std::string state(first.at("requestState").as_string());
  EXPECT_TRUE(core.exchange_gone(30, now).empty()) << "closing the first answer cancels nothing";

  auto retry_with = [&](const std::string& st, uint64_t x, const std::string& tool = "find") {
    json::object body = parse(asks);
    body["id"] = 2;
    auto& params = body["params"].as_object();
    params["name"] = tool;
    params["requestState"] = st;
    params["inputResponses"] =
        json::object{{key, json::object{{"action", "accept"}, {"content", json::object{}}}}};
    return modern(json::serialize(body), x);
  };
  std::string altered = state;
  altered[altered.size() / 2] = altered[altered.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_NE(std::string(answer(retry_with(altered, 31), 31).at("error").at("message").as_string())
                .find("altered"),
            std::string::npos);
  EXPECT_NE(
      std::string(answer(retry_with(state, 32, "update"), 32).at("error").at("message").as_string())
          .find("another request"),
      std::string::npos);
  auto other = core.modern_request(
      {"mallory", {"*"}}, {"2026-07-28", "tools/call", "find"},
      message(json::serialize(
          json::object{{"jsonrpc", "2.0"},
                       {"id", 3},
                       {"method", "tools/call"},
                       {"params", json::object{{"name", "find"},
                                               {"requestState", state},
                                               {"_meta", parse(asks).at("params").at("_meta")}}}})),
      10, 33, now);
  EXPECT_NE(
      std::string(answer(other, 33).at("error").at("message").as_string()).find("another agent"),
      std::string::npos);

  auto resumed = retry_with(state, 34);
  auto forwarded = only<SendUpstream>(resumed);
  ASSERT_EQ(forwarded.size(), 1u);
  EXPECT_EQ(parse(forwarded[0].message).at("id"), 77) << "under the server's own id";
  EXPECT_EQ(only<Record>(resumed).at(0).record.type, AuditType::kServerRequest);
  EXPECT_TRUE(only<ToAgent>(resumed).empty()) << "the retry waits for the call's answer";
  EXPECT_EQ(answer(retry_with(state, 35), 35).at("error").at("code"), rpc::kInvalidParams)
      << "a state is good for one retry";

  auto done =
      core.upstream_line("agent/bob", stream,
                         line(json::serialize(json::object{
                             {"jsonrpc", "2.0"}, {"id", up_id}, {"result", json::object{}}})),
                         now);
  auto final = answer(done, 34);
  EXPECT_EQ(final.at("id"), 2) << "the retry's id";
  EXPECT_EQ(final.at("result").at("resultType"), "complete");
  EXPECT_EQ(only<Record>(done).size(), 1u) << "one record for the call, over both rounds";
}

TEST_F(ModernTest, AStateOutlivesNeitherItsDeadlineNorItsCall) {
  const std::string asks =
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"find",)"
      R"("_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",)"
      R"("io.modelcontextprotocol/clientCapabilities":{"sampling":{}}}}})";
  auto first = modern(asks, 39);
  const std::string stream = only<OpenUpstream>(first).at(0).stream;
  const json::value first_id = parse(only<SendUpstream>(first).at(0).message).at("id");
  // Not declared by this request: refused to the server, the call cancelled there, and the
  // agent told -32021 with what was needed.
  auto roots =
      core.upstream_line("agent/bob", stream,
                         line(R"({"jsonrpc":"2.0","id":5,"method":"roots/list"})", first_id), now);
  auto to_server = only<SendUpstream>(roots);
  ASSERT_EQ(to_server.size(), 2u);
  EXPECT_EQ(parse(to_server[0].message).at("error").at("code"), rpc::kMethodNotFound);
  EXPECT_EQ(parse(to_server[1].message).at("method"), "notifications/cancelled");
  ASSERT_EQ(only<ToAgent>(roots).size(), 1u);
  EXPECT_EQ(only<ToAgent>(roots)[0].http_status, 400);
  const auto refused = answer(roots, 39).at("error");
  EXPECT_EQ(refused.at("code"), rpc::kMissingClientCapability);
  EXPECT_TRUE(refused.at("data").at("requiredCapabilities").at("roots").is_object());
  EXPECT_EQ(only<Record>(roots).at(0).record.error_class, "missing_capability");

  auto sent = modern(asks, 40);
  const json::value up_id = parse(only<SendUpstream>(sent).at(0).message).at("id");
  auto q = core.upstream_line(
      "agent/bob", stream,
      line(R"({"jsonrpc":"2.0","id":6,"method":"sampling/createMessage","params":{}})", up_id),
      now);
  const std::string state(answer(q, 40).at("result").at("requestState").as_string());
  now += 3001ms;  // past the binding's max_timeout: the call timed out while it waited
  auto expired = core.time_passed(now);
  EXPECT_EQ(only<Record>(expired).at(0).record.error_class, "timeout");
  EXPECT_TRUE(only<ToAgent>(expired).empty()) << "no one was waiting for it";
  json::object body = parse(asks);
  body["params"].as_object()["requestState"] = state;
  auto late = modern(json::serialize(body), 41);
  EXPECT_EQ(answer(late, 41).at("error").at("code"), rpc::kInvalidParams);
}

TEST_F(ModernTest, ANewScopeEndsTheOldContextAsASessionEnds) {
  auto sent = modern(call(1, "find"), 50);
  const std::string stream = only<OpenUpstream>(sent).at(0).stream;
  modern(std::string(R"({"jsonrpc":"2.0","id":"s","method":"subscriptions/listen","params":{)"
                     R"("notifications":{"toolsListChanged":true},)") +
             kMeta + "}}",
         51);
  // The agent's scope changed (an admin edited it): the next request starts a new context.
  auto next = core.modern_request(
      {"bob", {"find"}}, {"2026-07-28", "tools/list", ""},
      message(std::string(R"({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{)") + kMeta +
              "}}"),
      10, 52, now);
  EXPECT_EQ(answer(next, 50).at("error").at("code"), rpc::kUpstreamUnavailable)
      << "the call in flight is answered";
  EXPECT_EQ(answer(next, 51).at("id"), "s") << "the listener is told its subscription ended";
  auto closed = only<CloseUpstream>(next);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].stream, stream);
  ASSERT_EQ(only<SessionEnded>(next).size(), 1u);
  EXPECT_EQ(answer(next, 52).at("result").at("tools").as_array().size(), 1u) << "the new scope";
}

}  // namespace
}  // namespace airlock::controlplane
