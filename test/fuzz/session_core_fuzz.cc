// libFuzzer target: mcp-tunnel's upstream session core (src/tunnel/session_core.h) driven by
// an event sequence read from the input — downstream requests, cancellations and raw
// messages, the transport opening and failing, server answers and raw server messages, the
// session lost, own requests, the clock moving, close; with server/discover first (a server of
// 2026-07-28 or not), its input_required results and the agent's answers to them. Nothing may
// crash or loop; and the core must hold its promises: no downstream request is answered more
// often than it was sent, an own request is completed at most once, starts are numbered
// upwards, a start never waits longer than the backoff's cap, a request sent to a server used
// without a session carries the revision's _meta, only requests in flight are abandoned, and
// a closed session does nothing more.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include "tunnel/session_core.h"

using namespace airlock::tunnel;
using namespace airlock::tunnel::session;
namespace json = boost::json;

namespace {
void check(bool ok, int line = __builtin_LINE()) {
  if (ok) return;
  fprintf(stderr, "session_core_fuzz: check at line %d failed\n", line);
  abort();
}

const char* const kMethods[] = {"tools/call", "tools/list",  "resources/read",
                                "ping",       "prompts/get", "completion/complete"};

struct Driver {
  explicit Driver(Mode mode) : core("fuzz", json::object{}, SessionCore::kRestartPolicy, 1, mode) {}
  SessionCore core;
  Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
  std::map<std::string, int> sent;      // downstream id -> requests sent under it
  std::map<std::string, int> answered;  // downstream id -> responses delivered
  std::set<int64_t> own_open, own_done;
  uint64_t last_attempt = 0;
  std::optional<json::value> init_id, discover_id;
  std::vector<json::value> inputs;  // input requests delivered to the agent
  std::set<int64_t> transmitted;    // upstream request ids sent
  bool closed = false;

  void take(const Effects& effects) {
    for (const auto& e : effects) {
      // Closed, the only thing left to say is that an own request made since has failed.
      if (closed) check(std::holds_alternative<OwnReply>(e));
      if (auto* s = std::get_if<Start>(&e)) {
        check(s->attempt > last_attempt);
        check(s->after <= SessionCore::kRestartPolicy.cap);
        last_attempt = s->attempt;
      } else if (auto* t = std::get_if<Transmit>(&e)) {
        const auto* m = t->message.if_contains("method");
        if (m && *m == "initialize") init_id = t->message.at("id");
        if (m && *m == "server/discover") discover_id = t->message.at("id");
        if (const auto* id = t->message.if_contains("id"); m && id && id->is_int64()) {
          transmitted.insert(id->as_int64());
        }
        if (m && core.stateless()) {
          check(t->message.at("params").at("_meta").as_object().contains(
              "io.modelcontextprotocol/protocolVersion"));
        }
      } else if (auto* a = std::get_if<Abandon>(&e)) {
        check(core.stateless() && transmitted.count(a->id) == 1);
      } else if (auto* d = std::get_if<Deliver>(&e)) {
        if (d->message.contains("method")) {  // a server notification or request
          if (const auto* id = d->message.if_contains("id")) inputs.push_back(*id);
          continue;
        }
        const auto* id = d->message.if_contains("id");
        check(id != nullptr);
        const std::string key = json::serialize(*id);
        check(++answered[key] <= sent[key]);
      } else if (auto* o = std::get_if<OwnReply>(&e)) {
        check(own_open.count(o->id) == 1 && own_done.insert(o->id).second);
        own_open.erase(o->id);
      }
    }
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t i = 0;
  auto byte = [&]() -> uint8_t { return i < size ? data[i++] : 0; };
  const uint8_t mode = byte();
  Driver d(Mode{.discover = (mode & 1) != 0, .listen = (mode & 2) != 0});
  // A JSON text from the input: a length byte, then that many bytes.
  auto text = [&]() {
    const size_t want = byte();
    const size_t n = std::min(want, size - std::min(i, size));
    std::string s(reinterpret_cast<const char*>(data) + i, n);
    i += n;
    return s;
  };
  for (int steps = 0; i < size && steps < 256; ++steps) {
    const uint8_t op = byte() % 15;
    const uint8_t arg = byte();
    if (op == 0 || op == 1) {  // a downstream request, by number or by string id
      json::value id = op == 0 ? json::value(arg % 8) : json::value(std::to_string(arg % 8));
      d.sent[json::serialize(id)]++;
      d.take(d.core.send(json::object{{"jsonrpc", "2.0"},
                                      {"id", id},
                                      {"method", kMethods[arg % 6]},
                                      {"params", json::object{}}},
                         d.now));
    } else if (op == 2) {
      d.take(
          d.core.send(json::object{{"jsonrpc", "2.0"},
                                   {"method", "notifications/cancelled"},
                                   {"params", json::object{{"requestId", json::value(arg % 8)}}}},
                      d.now));
    } else if (op == 3) {
      d.take(d.core.on_transport_open(d.last_attempt - (arg % 2)));
    } else if (op == 4) {
      d.take(d.core.on_start_failed(d.last_attempt - (arg % 2), "refused", d.now));
    } else if (op == 12) {  // the server answers the probe: 2026-07-28 or not
      if (!d.discover_id) continue;
      json::object answer{{"jsonrpc", "2.0"}, {"id", *d.discover_id}};
      if (arg & 1) {
        answer["result"] = json::object{
            {"supportedVersions", json::array{(arg & 2) ? "2026-07-28" : "2025-11-25"}},
            {"capabilities", json::object{{"tools", json::object{{"listChanged", true}}}}}};
      } else {
        answer["error"] = json::object{{"code", -32601}, {"message", "no"}};
      }
      d.take(d.core.on_upstream(std::move(answer), std::nullopt, d.now));
    } else if (op == 13) {  // the server asks for input instead of answering
      json::object requests;
      for (int k = 0; k <= (arg & 1); ++k) {
        requests["k" + std::to_string(k)] =
            json::object{{"method", (arg & 2) ? "roots/list" : "elicitation/create"}};
      }
      json::object result{{"resultType", "input_required"}, {"inputRequests", requests}};
      if (arg & 4) result["requestState"] = "s";
      d.take(d.core.on_upstream(
          json::object{{"jsonrpc", "2.0"}, {"id", (arg >> 3) % 16}, {"result", result}},
          std::nullopt, d.now));
    } else if (op == 14) {  // the agent answers an input request, once or again
      if (d.inputs.empty()) continue;
      json::object answer{{"jsonrpc", "2.0"}, {"id", d.inputs[arg % d.inputs.size()]}};
      if (arg & 0x80) {
        answer["error"] = json::object{{"code", -1}, {"message", "declined"}};
      } else {
        answer["result"] = json::object{};
      }
      d.take(d.core.send(std::move(answer), d.now));
    } else if (op == 5) {  // the server answers an id, or initialize
      json::value id = (arg & 1) && d.init_id ? *d.init_id : json::value(arg % 16);
      json::object answer{{"jsonrpc", "2.0"}, {"id", id}};
      if (arg & 2) {
        answer["error"] = json::object{{"code", -1}, {"message", "no"}};
      } else {
        answer["result"] = json::object{{"protocolVersion", "2025-11-25"}};
      }
      d.take(d.core.on_upstream(std::move(answer), std::nullopt, d.now));
    } else if (op == 6) {
      d.take(d.core.on_lost("lost", d.now));
    } else if (op == 7) {
      Effects out;
      const int64_t id = d.core.own_request(kMethods[arg % 6], {}, d.now, out);
      d.own_open.insert(id);
      d.take(out);
    } else if (op == 8) {
      d.now += std::chrono::milliseconds(arg * 250);
    } else if (op == 9) {
      if (arg % 4 == 0) {
        d.take(d.core.close());
        d.closed = true;
      } else if (!d.own_open.empty()) {
        d.core.own_abandoned(*d.own_open.begin());
        d.own_open.erase(d.own_open.begin());
      }
    } else {  // raw JSON, downstream (10) or from the server (11)
      std::error_code ec;
      auto v = json::parse(text(), ec);
      if (ec || !v.is_object()) continue;
      auto& o = v.as_object();
      // Requests from downstream are counted as sent, whatever their id.
      if (op == 10 && o.contains("method") && o.contains("id")) {
        d.sent[json::serialize(o.at("id"))]++;
      }
      d.take(op == 10 ? d.core.send(std::move(o), d.now)
                      : d.core.on_upstream(std::move(o), json::value(arg % 16), d.now));
    }
  }
  return 0;
}
