// libFuzzer target: mcp-tunnel's upstream session core (src/tunnel/session_core.h) driven by
// an event sequence read from the input — downstream requests, cancellations and raw
// messages, the transport opening and failing, server answers and raw server messages, the
// session lost, own requests, the clock moving, close. Nothing may crash or loop; and the
// core must hold its promises: no downstream request is answered more often than it was sent,
// an own request is completed at most once, starts are numbered upwards, a start never waits
// longer than the backoff's cap, and a closed session does nothing more.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include "tunnel/session_core.h"

using namespace airlock::tunnel;
using namespace airlock::tunnel::session;
namespace json = boost::json;

namespace {
void check(bool ok) {
  if (!ok) abort();
}

const char* const kMethods[] = {"tools/call", "tools/list",  "resources/read",
                                "ping",       "prompts/get", "completion/complete"};

struct Driver {
  SessionCore core{"fuzz", json::object{}, SessionCore::kRestartPolicy, 1};
  Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
  std::map<std::string, int> sent;      // downstream id -> requests sent under it
  std::map<std::string, int> answered;  // downstream id -> responses delivered
  std::set<int64_t> own_open, own_done;
  uint64_t last_attempt = 0;
  std::optional<json::value> init_id;
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
        if (auto* m = t->message.if_contains("method"); m && *m == "initialize") {
          init_id = t->message.at("id");
        }
      } else if (auto* d = std::get_if<Deliver>(&e)) {
        if (d->message.contains("method")) continue;  // a server notification or request
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
  Driver d;
  size_t i = 0;
  auto byte = [&]() -> uint8_t { return i < size ? data[i++] : 0; };
  // A JSON text from the input: a length byte, then that many bytes.
  auto text = [&]() {
    const size_t want = byte();
    const size_t n = std::min(want, size - std::min(i, size));
    std::string s(reinterpret_cast<const char*>(data) + i, n);
    i += n;
    return s;
  };
  for (int steps = 0; i < size && steps < 256; ++steps) {
    const uint8_t op = byte() % 12;
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
