// libFuzzer target: airlockd's /mcp session core (src/controlplane/gateway_core.h) driven by an
// event sequence read from the input — sessions opened and ended, agent requests (routed,
// listed, paged with any cursor), cancellations and answers to relayed server requests, raw
// agent messages, connector lines (answers, progress, server requests, raw bytes), streams
// ending each way, the catalog changing, the clock moving. Nothing may crash or loop; and the
// core must hold its promises: every agent request gets exactly one final answer, nothing is
// said on an exchange after its final answer, a routed request's final answer comes with
// exactly one metered audit record, nothing is sent on a stream that is not open, and an
// ended session is never spoken of again. MCP 2026-07-28 requests (headers right or wrong) and
// agents that stop reading their answers are in the mix.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include "common/stream_contract.h"
#include "controlplane/gateway_core.h"

using namespace airlock;
using namespace airlock::controlplane;
using namespace airlock::controlplane::gateway;
namespace json = boost::json;
namespace rpc = airlock::jsonrpc;

namespace {
// Aborts, naming the broken promise by its line.
void check(bool ok, int line = __builtin_LINE()) {
  if (ok) return;
  fprintf(stderr, "gateway_core_fuzz: check at line %d failed\n", line);
  abort();
}

const char* const kTools[] = {"find", "bash", "charge", "nope"};
const ConnectorRef kTunnel{proto::ConnectorKind::kTunnel, "sales"};
const ConnectorRef kSandbox{proto::ConnectorKind::kSandbox, "box"};

std::shared_ptr<const std::vector<Binding>> bindings() {
  auto b = std::make_shared<std::vector<Binding>>();
  Binding crm;
  crm.name = "crm";
  crm.connector = kTunnel;
  crm.server = "crm";
  crm.timeout = std::chrono::milliseconds(1000);
  crm.max_timeout = std::chrono::milliseconds(3000);
  b->push_back(crm);
  Binding box;
  box.name = "box";
  box.connector = kSandbox;
  box.server = std::string(proto::kSandboxToolset);
  b->push_back(box);
  Binding pay;
  pay.name = "pay";
  pay.connector = kTunnel;
  pay.server = "pay";
  pay.agent_credentials = {{"alice", "pay-alice"}};
  b->push_back(pay);
  return b;
}

std::map<ConnectorRef, ConnectorInventory> inventories() {
  std::map<ConnectorRef, ConnectorInventory> inv;
  inv[kTunnel].servers.push_back(json::parse(R"({"name":"crm","tools":[{"name":"find"}],
                      "resources":[{"uri":"crm://a","name":"a"}]})")
                                     .as_object());
  inv[kTunnel].servers.push_back(
      json::parse(R"({"name":"pay","tools":[{"name":"charge"}]})").as_object());
  inv[kSandbox].servers.push_back(
      json::parse(R"({"name":"toolset","tools":[{"name":"bash"}]})").as_object());
  return inv;
}

CatalogView view(bool sandbox_live) {
  CatalogView v;
  v.bindings = bindings();
  auto all = inventories();
  auto live = all;
  if (!sandbox_live) live.erase(kSandbox);
  std::vector<std::string> conflicts;
  v.catalog = std::make_shared<Catalog>(Catalog::build(*v.bindings, live, conflicts));
  v.inventories = std::make_shared<std::map<ConnectorRef, ConnectorInventory>>(all);
  return v;
}

struct Driver {
  GatewayCore core{GatewayCore::Limits{2, 4, std::chrono::milliseconds(5000), "fuzz-key"}};
  Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
  std::vector<std::string> open_sessions;  // as the shell would know them
  std::set<std::string> ended;
  std::set<std::pair<std::string, std::string>> streams;  // (session, stream) open
  std::map<uint64_t, bool> waiting;  // request exchange -> routed, until its final answer
  std::set<uint64_t> finished;
  std::vector<uint64_t> modern;     // exchanges of modern requests
  std::vector<std::string> states;  // requestStates of input_required answers seen
  uint64_t next_exchange = 1;
  int routed_finals = 0, metered = 0;
  int asked = 0;  // input_required answers: their calls may end with no one waiting

  void take(const Effects& effects) {
    for (const auto& e : effects) {
      std::visit(
          [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, ArmDeadline>) {
              return;
            } else if constexpr (std::is_same_v<T, Record>) {
              if (x.metered) ++metered;
            } else {
              check(!ended.count(x.session));
              if constexpr (std::is_same_v<T, OpenUpstream>) {
                check(streams.insert({x.session, x.stream}).second);
              } else if constexpr (std::is_same_v<T, SendUpstream>) {
                check(streams.count({x.session, x.stream}) == 1);
                json::parse(x.message);  // well-formed, always
              } else if constexpr (std::is_same_v<T, CloseUpstream>) {
                check(streams.erase({x.session, x.stream}) == 1);
              } else if constexpr (std::is_same_v<T, ToAgent>) {
                const json::value m = json::parse(x.message);
                const json::value* st = nullptr;
                if (auto* r = m.as_object().if_contains("result"); r && r->is_object()) {
                  st = r->as_object().if_contains("requestState");
                }
                if (st && st->is_string() && states.size() < 16) {
                  states.emplace_back(st->as_string());
                }
                if (x.exchange == 0) return;
                check(!finished.count(x.exchange));
                auto it = waiting.find(x.exchange);
                check(it != waiting.end());
                if (x.final) {
                  // A request refused as malformed (400, 404) never reached routing — but a
                  // call refused for a capability it lacked (-32021, 400) did. Nor does an
                  // input_required answer end its call: the retry's answer does.
                  const json::value* e = m.as_object().if_contains("error");
                  const bool lacked = e && e->is_object() && e->as_object().contains("code") &&
                                      e->as_object().at("code") == -32021;
                  if (it->second && ((x.http_status != 400 && x.http_status != 404) || lacked) &&
                      !st) {
                    ++routed_finals;
                  }
                  if (st) ++asked;
                  waiting.erase(it);
                  finished.insert(x.exchange);
                }
              } else if constexpr (std::is_same_v<T, SessionEnded>) {
                ended.insert(x.session);
                std::erase(open_sessions, x.session);
                for (auto s = streams.begin(); s != streams.end();) {
                  check(s->first != x.session);  // closed first
                  ++s;
                }
              }
            }
          },
          e);
    }
  }

  const std::string* session(uint8_t b) {
    if (open_sessions.empty()) return nullptr;
    return &open_sessions[b % open_sessions.size()];
  }
  const std::pair<std::string, std::string>* stream(uint8_t b) {
    if (streams.empty()) return nullptr;
    auto it = streams.begin();
    std::advance(it, b % streams.size());
    return &*it;
  }
  void request(const std::string& sid, const std::string& text) {
    std::string error;
    auto msg = rpc::parse(text, error);
    if (!msg) return;
    const uint64_t x = next_exchange++;
    const auto m = msg->method();
    const bool routed = m == "tools/call" || m == "prompts/get" || m == "resources/read" ||
                        m == "resources/subscribe" || m == "resources/unsubscribe" ||
                        m == "completion/complete";
    if (msg->kind == rpc::Kind::kRequest) waiting[x] = routed;
    take(core.agent_message(sid, std::move(*msg), text.size(), x, now));
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Driver d;
  d.take(d.core.set_catalog(view(true)));
  size_t i = 0;
  auto byte = [&]() -> uint8_t { return i < size ? data[i++] : 0; };
  // Raw text from the input: a length byte, then that many bytes.
  auto text = [&]() {
    const size_t want = byte();
    const size_t n = std::min(want, size - std::min(i, size));
    std::string s(reinterpret_cast<const char*>(data) + i, n);
    i += n;
    return s;
  };
  auto id = [&]() { return std::to_string(byte() % 4); };
  int opened = 0;
  for (int steps = 0; i < size && steps < 256; ++steps) {
    const uint8_t op = byte() % 16;
    switch (op) {
      case 0: {  // initialize
        const std::string sid = "s" + std::to_string(++opened);
        const bool alice = byte() & 1;
        std::string error;
        auto msg = rpc::parse(
            R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}}}})",
            error);
        const uint64_t x = d.next_exchange++;
        d.waiting[x] = false;
        d.take(d.core.initialize(sid, sid, {alice ? "alice" : "bob", {alice ? "*" : "find"}}, *msg,
                                 x, d.now));
        if (d.core.touch(sid, alice ? "alice" : "bob", d.now)) d.open_sessions.push_back(sid);
        break;
      }
      case 1: {  // a routed call
        auto* s = d.session(byte());
        if (!s) break;
        const uint8_t b = byte();
        std::string meta = (b & 4) ? R"(,"_meta":{"progressToken":)" + id() + "}" : "";
        d.request(*s, R"({"jsonrpc":"2.0","id":)" + id() +
                          R"(,"method":"tools/call","params":{"name":")" + kTools[b % 4] + "\"" +
                          meta + "}}");
        break;
      }
      case 2: {  // resources, prompts, completion: routed or refused
        auto* s = d.session(byte());
        if (!s) break;
        const char* const kRouted[] = {
            R"("method":"resources/read","params":{"uri":"crm://a"}})",
            R"("method":"resources/subscribe","params":{"uri":"x://b"}})",
            R"("method":"prompts/get","params":{"name":"p"}})",
            R"("method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"crm://a"}}})",
            R"("method":"tools/call","params":{}})",
            R"("method":"tools/call"})"};
        d.request(*s, R"({"jsonrpc":"2.0","id":)" + id() + "," + kRouted[byte() % 6]);
        break;
      }
      case 3: {  // answered here
        auto* s = d.session(byte());
        if (!s) break;
        const char* const kHere[] = {R"("method":"tools/list"})",
                                     R"("method":"ping"})",
                                     R"("method":"logging/setLevel","params":{"level":"info"}})",
                                     R"("method":"logging/setLevel","params":{"level":7}})",
                                     R"("method":"resources/templates/list"})",
                                     R"("method":"nothing/here"})"};
        d.request(*s, R"({"jsonrpc":"2.0","id":)" + id() + "," + kHere[byte() % 6]);
        break;
      }
      case 4: {  // a page from any cursor
        auto* s = d.session(byte());
        if (!s) break;
        json::object req{{"jsonrpc", "2.0"},
                         {"id", 9},
                         {"method", "tools/list"},
                         {"params", json::object{{"cursor", text()}}}};
        d.request(*s, json::serialize(req));
        break;
      }
      case 5: {  // cancellation
        auto* s = d.session(byte());
        if (!s) break;
        d.request(*s,
                  R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":)" +
                      id() + "}}");
        break;
      }
      case 6: {  // the agent answers a relayed request, or sends anything at all
        auto* s = d.session(byte());
        if (!s) break;
        if (byte() & 1) {
          d.request(*s, R"({"jsonrpc":"2.0","id":"airlock-srv-)" + id() + R"(","result":{}})");
        } else {
          d.request(*s, text());
        }
        break;
      }
      case 7:
      case 8: {  // a connector line
        auto* st = d.stream(byte());
        if (!st) break;
        const auto [sid, key] = *st;
        const uint8_t b = byte();
        std::string message;
        switch (b % 5) {
          case 0:
            message = R"({"jsonrpc":"2.0","id":)" + id() + R"(,"result":{"content":[]}})";
            break;
          case 1:
            message =
                R"({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":)" +
                id() + R"(,"progress":1}})";
            break;
          case 2:
            message = R"({"jsonrpc":"2.0","id":)" + id() + R"(,"method":")" +
                      ((b & 8) ? "sampling/createMessage" : "roots/list") + "\"}";
            break;
          case 3:
            message =
                R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":)" +
                id() + "}}";
            break;
          default:
            d.take(d.core.upstream_line(sid, key, text(), d.now));
            continue;
        }
        std::optional<json::value> related;
        if (b & 16) related = json::value(std::stoi(id()));
        std::string line = proto::serialize_line(message, related, b >> 6);
        line.pop_back();
        d.take(d.core.upstream_line(sid, key, line, d.now));
        break;
      }
      case 9: {  // a stream ends
        auto* st = d.stream(byte());
        if (!st) break;
        const auto [sid, key] = *st;
        d.streams.erase(*st);
        d.take(d.core.upstream_closed(sid, key, {static_cast<StreamEnd::Kind>(byte() % 4), "why"},
                                      d.now));
        break;
      }
      case 10:
        d.now += std::chrono::milliseconds(100) * byte();
        d.take(d.core.time_passed(d.now));
        break;
      case 11: {
        auto* s = d.session(byte());
        if (!s) break;
        d.take(d.core.end_session(*s, "fuzz", d.now));
        break;
      }
      case 12: {
        auto* s = d.session(byte());
        if (s) d.core.listening(*s, byte() & 1);
        break;
      }
      case 13:
        d.take(d.core.set_catalog(view(byte() & 1)));
        break;
      case 14: {  // a request of MCP 2026-07-28, its headers right or not
        const bool alice = byte() & 1;
        const uint8_t b = byte();
        const char* const kMethods[] = {"tools/call",           "tools/list",     "server/discover",
                                        "subscriptions/listen", "resources/read", "ping"};
        const std::string method = kMethods[b % 6];
        const std::string name = method == "resources/read" ? "crm://a" : kTools[(b >> 3) % 4];
        json::object meta{
            {"io.modelcontextprotocol/protocolVersion", (b & 64) ? "2025-11-25" : "2026-07-28"},
            {"io.modelcontextprotocol/clientCapabilities", json::object{}}};
        if (b & 128) meta["io.modelcontextprotocol/logLevel"] = "info";
        const uint8_t extra = byte();
        if (extra & 1) {
          meta["io.modelcontextprotocol/clientCapabilities"] =
              json::object{{"elicitation", json::object{}},
                           {"sampling", json::object{}},
                           {"roots", json::object{}}};
        }
        if (byte() & 1) meta["progressToken"] = std::stoi(id());
        json::object params{{"_meta", std::move(meta)},
                            {"notifications", json::object{{"toolsListChanged", true}}}};
        params[method == "resources/read" ? "uri" : "name"] = name;
        if (byte() & 1) params.erase("_meta");
        if (extra & 2) {  // a retry: a state seen, or one made up
          params["requestState"] = (extra & 4) && !d.states.empty()
                                       ? json::value(d.states[extra % d.states.size()])
                                       : json::value(text());
          params["inputResponses"] =
              json::object{{"input-" + id(), json::object{{"action", "accept"}}}};
        }
        json::object req{{"jsonrpc", "2.0"},
                         {"id", std::stoi(id())},
                         {"method", method},
                         {"params", std::move(params)}};
        const uint8_t h = byte();
        RequestHeaders headers{(h & 1) ? "" : "2026-07-28", (h & 2) ? "tools/list" : method,
                               (h & 4) ? "" : name};
        std::string error;
        auto msg = rpc::parse(json::serialize(req), error);
        if (!msg) break;  // the made-up state was not UTF-8
        const std::string agent = alice ? "alice" : "bob";
        d.ended.erase("agent/" + agent);  // its context may begin again
        const uint64_t x = d.next_exchange++;
        d.waiting[x] = method == "tools/call" || method == "resources/read";
        d.modern.push_back(x);
        if (auto refused =
                d.core.refuse_by_headers({agent, {alice ? "*" : "find"}}, headers, x, d.now);
            !refused.empty()) {
          d.take(refused);
          break;
        }
        d.take(d.core.modern_request({agent, {alice ? "*" : "find"}}, headers, std::move(*msg), 64,
                                     x, d.now));
        break;
      }
      case 15: {  // the agent stops reading a modern answer
        if (d.modern.empty()) break;
        const uint64_t x = d.modern[byte() % d.modern.size()];
        d.take(d.core.exchange_gone(x, d.now));
        d.waiting.erase(x);  // a listener that left is owed nothing
        break;
      }
    }
  }
  d.take(d.core.end_all("done", d.now));
  check(d.core.session_count() == 0);
  check(!d.core.next_deadline());
  check(d.streams.empty());
  // Every request was answered exactly once, and every routed answer audited once; a call
  // that asked the agent for input may end unanswered (the agent never retried), audited.
  check(d.waiting.empty());
  check(d.routed_finals <= d.metered && d.metered <= d.routed_finals + d.asked);
  return 0;
}
