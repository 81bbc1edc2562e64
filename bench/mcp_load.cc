// mcp_load: a closed-loop MCP load generator. N callers, each with its own connection and its
// own MCP session, call one tool back to back for a fixed time and record every call's latency.
// With --revision 2026-07-28 there are no sessions: every request carries its version and
// capabilities in _meta and the request headers (MCP-Protocol-Version, Mcp-Method, Mcp-Name).
// Targets: http://HOST:PORT/PATH (Streamable HTTP; JSON or SSE answers) or tcp://HOST:PORT
// (newline-delimited JSON-RPC). Prints one JSON line: calls/s, p50, p99, errors.
//
//   mcp_load --target http://127.0.0.1:8443/mcp --header "Authorization: Bearer alk_…"
//            --concurrency 64 --duration 5s --tool echo --arguments '{"message":"hi"}'
//
// Loopback targets only (the benchmark never sends traffic elsewhere).
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

struct Options {
  bool tcp = false;
  std::string host, port, path;
  std::vector<std::pair<std::string, std::string>> headers;
  int concurrency = 1;
  std::chrono::milliseconds duration{5000};
  std::string tool = "echo";
  std::string method = "tools/call";  // or "ping": the first hop alone, answered by the target
  json::object arguments;
  int sessions = 0;  // HTTP: callers share this many sessions (0: one each)
  bool stateless = false;  // HTTP: MCP 2026-07-28, no session
  // HTTP: instead of calling for `duration`, open this many sessions one after another, time
  // each one's first call, end it (DELETE), and wait `pause` before the next.
  int new_sessions = 0;
  std::chrono::milliseconds pause{0};
};

// Session ids shared between HTTP callers: caller i uses session i % sessions, created by the
// first caller of each.
struct SharedSessions {
  std::vector<std::string> ids;
};

// Measurement starts when every caller has its session (spawning server processes behind a
// gateway is set-up, not load), and lasts `duration` from there.
struct Barrier {
  int total = 0;
  int arrived = 0;
  std::chrono::milliseconds duration{0};
  Clock::time_point start{}, until{};
  bool open = false;
  void leave() {
    if (++arrived == total) {
      start = Clock::now();
      until = start + duration;
      open = true;
    }
  }
  asio::awaitable<void> arrive() {
    leave();
    asio::steady_timer t(co_await asio::this_coro::executor);
    const auto give_up = Clock::now() + std::chrono::minutes(2);
    while (!open && Clock::now() < give_up) {
      t.expires_after(std::chrono::milliseconds(1));
      co_await t.async_wait(kUseTuple);
    }
    if (!open) {  // some caller never finished set-up: measure from now
      start = Clock::now();
      until = start + duration;
      open = true;
    }
  }
};

struct Stats {
  std::vector<uint32_t> latencies_us;
  uint64_t errors = 0;
  std::string first_error;
  void error(const std::string& e) {
    if (errors++ == 0) first_error = e;
  }
};

std::string request(int64_t id, std::string_view method, json::object params) {
  return json::serialize(json::object{
      {"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}});
}

json::object init_params() {
  return {{"protocolVersion", "2025-06-18"},
          {"capabilities", json::object{}},
          {"clientInfo", json::object{{"name", "mcp_load"}, {"version", "1"}}}};
}

// A response carries "result" (or "error") for our id: for SSE bodies, some data line does.
json::object call_params(const Options& o) {
  json::object params;
  if (o.method != "ping") params = {{"name", o.tool}, {"arguments", o.arguments}};
  if (o.stateless) {
    params["_meta"] = json::object{{"io.modelcontextprotocol/protocolVersion", "2026-07-28"},
                                   {"io.modelcontextprotocol/clientCapabilities", json::object{}},
                                   {"io.modelcontextprotocol/clientInfo",
                                    json::object{{"name", "mcp_load"}, {"version", "1"}}}};
  }
  return params;
}

bool answered_ok(const std::string& body) {
  return body.find("\"result\"") != std::string::npos && body.find("\"isError\":true") == std::string::npos;
}

// A caller that fails during set-up still counts at the barrier, so the others do not wait.
struct LeaveUnlessArrived {
  Barrier& barrier;
  bool& arrived;
  ~LeaveUnlessArrived() {
    if (!arrived) barrier.leave();
  }
};

asio::awaitable<void> http_caller(const Options& o, tcp::endpoint ep, Barrier& barrier,
                                  Stats& st, int index, SharedSessions& shared) {
  bool arrived = false;
  LeaveUnlessArrived guard{barrier, arrived};
  beast::tcp_stream s(co_await asio::this_coro::executor);
  if (auto [ec] = co_await s.async_connect(ep, kUseTuple); ec) {
    st.error("connect: " + ec.message());
    co_return;
  }
  s.socket().set_option(tcp::no_delay(true));
  beast::flat_buffer buf;
  std::string session;
  auto post = [&](std::string body, http::response<http::string_body>& res)
      -> asio::awaitable<boost::system::error_code> {
    http::request<http::string_body> req{http::verb::post, o.path, 11};
    req.set(http::field::host, o.host + ":" + o.port);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "application/json, text/event-stream");
    for (const auto& [k, v] : o.headers) req.set(k, v);
    if (!session.empty()) req.set("Mcp-Session-Id", session);
    if (o.stateless) {
      req.set("MCP-Protocol-Version", "2026-07-28");
      req.set("Mcp-Method", o.method);
      if (o.method == "tools/call") req.set("Mcp-Name", o.tool);
    } else {
      req.set("MCP-Protocol-Version", "2025-06-18");
    }
    req.keep_alive(true);
    req.body() = std::move(body);
    req.prepare_payload();
    s.expires_after(std::chrono::seconds(30));
    auto [wec, wn] = co_await http::async_write(s, req, kUseTuple);
    if (wec) co_return wec;
    auto [rec, rn] = co_await http::async_read(s, buf, res, kUseTuple);
    co_return rec;
  };
  if (o.new_sessions > 0) {
    arrived = true;
    co_await barrier.arrive();
    asio::steady_timer t(co_await asio::this_coro::executor);
    const json::object params = call_params(o);
    for (int n = 0; n < o.new_sessions; ++n) {
      session.clear();
      http::response<http::string_body> res, nres, r;
      if (auto ec = co_await post(request(1, "initialize", init_params()), res);
          ec || res.result_int() != 200) {
        st.error("initialize: " + (ec ? ec.message() : std::to_string(res.result_int())));
        co_return;
      }
      session = std::string(res["mcp-session-id"]);
      co_await post(R"({"jsonrpc":"2.0","method":"notifications/initialized"})", nres);
      const auto t0 = Clock::now();
      auto ec = co_await post(request(2, o.method, params), r);
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
      if (ec || r.result_int() != 200 || !answered_ok(r.body())) {
        st.error(ec ? ec.message() : std::to_string(r.result_int()) + " " + r.body().substr(0, 200));
        if (ec) co_return;
      } else {
        st.latencies_us.push_back(static_cast<uint32_t>(us.count()));
      }
      http::request<http::empty_body> del{http::verb::delete_, o.path, 11};
      del.set(http::field::host, o.host + ":" + o.port);
      for (const auto& [k, v] : o.headers) del.set(k, v);
      del.set("Mcp-Session-Id", session);
      del.keep_alive(true);
      http::response<http::string_body> dres;
      co_await http::async_write(s, del, kUseTuple);
      co_await http::async_read(s, buf, dres, kUseTuple);
      t.expires_after(o.pause);
      co_await t.async_wait(kUseTuple);
    }
    barrier.until = Clock::now();
    co_return;
  }
  const size_t slot = static_cast<size_t>(index % o.sessions);
  if (o.stateless) {
    // No session to open.
  } else if (index < o.sessions) {
    http::response<http::string_body> res;
    if (auto ec = co_await post(request(1, "initialize", init_params()), res);
        ec || res.result_int() != 200) {
      st.error("initialize: " +
               (ec ? ec.message() : std::to_string(res.result_int()) + " " + res.body()));
      shared.ids[slot] = "-";
      co_return;
    }
    session = std::string(res["mcp-session-id"]);
    http::response<http::string_body> nres;
    co_await post(R"({"jsonrpc":"2.0","method":"notifications/initialized"})", nres);
    shared.ids[slot] = session;
  } else {
    asio::steady_timer t(co_await asio::this_coro::executor);
    while (shared.ids[slot].empty()) {
      t.expires_after(std::chrono::milliseconds(1));
      co_await t.async_wait(kUseTuple);
    }
    session = shared.ids[slot];
    if (session == "-") co_return;
  }
  // Ids are unique per session: callers sharing one use disjoint ranges.
  const int64_t id_base = int64_t{index} << 32;
  const json::object params = call_params(o);
  arrived = true;
  co_await barrier.arrive();
  for (int64_t id = id_base + 2; Clock::now() < barrier.until; ++id) {
    http::response<http::string_body> r;
    const auto t0 = Clock::now();
    auto ec = co_await post(request(id, o.method, params), r);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
    if (ec || r.result_int() != 200 || !answered_ok(r.body())) {
      st.error(ec ? ec.message() : std::to_string(r.result_int()) + " " + r.body().substr(0, 200));
      if (ec) co_return;
      continue;
    }
    st.latencies_us.push_back(static_cast<uint32_t>(us.count()));
  }
}

asio::awaitable<void> tcp_caller(const Options& o, tcp::endpoint ep, Barrier& barrier,
                                 Stats& st) {
  bool arrived = false;
  LeaveUnlessArrived guard{barrier, arrived};
  tcp::socket s(co_await asio::this_coro::executor);
  if (auto [ec] = co_await s.async_connect(ep, kUseTuple); ec) {
    st.error("connect: " + ec.message());
    co_return;
  }
  s.set_option(tcp::no_delay(true));
  std::string buf;
  auto call = [&](std::string line, bool expect_answer) -> asio::awaitable<std::string> {
    line += "\n";
    auto [wec, wn] = co_await asio::async_write(s, asio::buffer(line), kUseTuple);
    if (wec || !expect_answer) co_return std::string();
    for (;;) {
      auto nl = buf.find('\n');
      if (nl != std::string::npos) {
        std::string got = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        if (got.find("\"id\"") != std::string::npos) co_return got;  // skip notifications
        continue;
      }
      auto [rec, rn] = co_await asio::async_read_until(s, asio::dynamic_buffer(buf), '\n', kUseTuple);
      if (rec) co_return std::string();
    }
  };
  if ((co_await call(request(1, "initialize", init_params()), true)).empty()) {
    st.error("initialize failed");
    co_return;
  }
  co_await call(R"({"jsonrpc":"2.0","method":"notifications/initialized"})", false);
  const json::object params = call_params(o);
  arrived = true;
  co_await barrier.arrive();
  for (int64_t id = 2; Clock::now() < barrier.until; ++id) {
    const auto t0 = Clock::now();
    std::string r = co_await call(request(id, o.method, params), true);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
    if (r.empty()) {
      st.error("connection closed");
      co_return;
    }
    if (!answered_ok(r)) {
      st.error(r.substr(0, 200));
      continue;
    }
    st.latencies_us.push_back(static_cast<uint32_t>(us.count()));
  }
}

int main(int argc, char** argv) {
  CLI::App app{"mcp_load — closed-loop tools/call load against one MCP endpoint"};
  std::string target, duration = "5s", arguments = "{}", label;
  std::vector<std::string> headers;
  Options o;
  app.add_option("--target", target, "http://HOST:PORT/PATH or tcp://HOST:PORT (loopback)")->required();
  app.add_option("--header", headers, "extra HTTP header 'Name: value' (repeatable)");
  app.add_option("--concurrency", o.concurrency, "callers, each with its own session")->check(CLI::Range(1, 4096));
  app.add_option("--duration", duration, "how long to call, e.g. 5s or 500ms");
  app.add_option("--tool", o.tool, "tool to call");
  app.add_option("--method", o.method, "tools/call, or ping (answered by the target itself)")
      ->check(CLI::IsMember({"tools/call", "ping"}))->capture_default_str();
  app.add_option("--arguments", arguments, "the tool's arguments as JSON");
  app.add_option("--label", label, "name of this run in the output");
  app.add_option("--sessions", o.sessions,
                 "HTTP: callers share this many MCP sessions (default: one per caller)");
  int pause_ms = 0;
  app.add_option("--new-sessions", o.new_sessions,
                 "HTTP, one caller: open this many sessions one after another and time each "
                 "one's first call (instead of --duration)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--pause-ms", pause_ms, "with --new-sessions: wait between sessions")
      ->check(CLI::Range(0, 60000));
  std::string revision = "2025-06-18";
  app.add_option("--revision", revision,
                 "HTTP: the MCP revision to speak: 2025-06-18 (a session per caller, or "
                 "--sessions) or 2026-07-28 (no session)")
      ->check(CLI::IsMember({"2025-06-18", "2026-07-28"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  o.pause = std::chrono::milliseconds(pause_ms);
  if (o.new_sessions > 0) o.concurrency = 1;
  o.stateless = revision == "2026-07-28";
  if (o.stateless && o.new_sessions > 0) {
    std::cerr << "mcp_load: --new-sessions needs sessions (--revision 2025-06-18)\n";
    return 2;
  }

  auto u = boost::urls::parse_uri(target);
  if (!u || (u->scheme() != "http" && u->scheme() != "tcp")) {
    std::cerr << "mcp_load: --target must be http://HOST:PORT/PATH or tcp://HOST:PORT\n";
    return 2;
  }
  o.tcp = u->scheme() == "tcp";
  o.host = std::string(u->host_address());
  o.port = std::string(u->port());
  o.path = u->encoded_path().empty() ? "/" : std::string(u->encoded_path());
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(o.host, ec);
  if (ec || !addr.is_loopback()) {
    std::cerr << "mcp_load: only loopback IP targets are allowed (got " << o.host << ")\n";
    return 2;
  }
  for (const auto& h : headers) {
    auto c = h.find(':');
    if (c == std::string::npos) {
      std::cerr << "mcp_load: --header needs 'Name: value'\n";
      return 2;
    }
    std::string v = h.substr(c + 1);
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
    o.headers.emplace_back(h.substr(0, c), v);
  }
  o.duration = std::chrono::milliseconds(
      duration.ends_with("ms") ? std::stol(duration) : std::stol(duration) * 1000);
  o.arguments = json::parse(arguments).as_object();

  if (o.sessions <= 0 || o.sessions > o.concurrency) o.sessions = o.concurrency;
  SharedSessions shared;
  shared.ids.resize(static_cast<size_t>(o.sessions));
  asio::io_context io(1);
  const tcp::endpoint ep(addr, static_cast<uint16_t>(std::stoi(o.port)));
  std::vector<Stats> stats(static_cast<size_t>(o.concurrency));
  Barrier barrier;
  barrier.total = o.concurrency;
  barrier.duration = o.duration;
  for (int i = 0; i < o.concurrency; ++i) {
    auto& st = stats[static_cast<size_t>(i)];
    if (o.tcp) asio::co_spawn(io, tcp_caller(o, ep, barrier, st), asio::detached);
    else asio::co_spawn(io, http_caller(o, ep, barrier, st, i, shared), asio::detached);
  }
  io.run();
  const double secs = std::chrono::duration<double>(Clock::now() - barrier.start).count();
  std::vector<uint32_t> all;
  uint64_t errors = 0;
  std::string first_error;
  for (auto& st : stats) {
    all.insert(all.end(), st.latencies_us.begin(), st.latencies_us.end());
    errors += st.errors;
    if (first_error.empty()) first_error = st.first_error;
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) -> uint32_t {
    return all.empty() ? 0 : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
  };
  json::object out{{"label", label},
                   {"target", target},
                   {"concurrency", o.concurrency},
                   {"sessions", o.tcp         ? o.concurrency
                                : o.stateless ? 0
                                              : o.sessions},
                   {"revision", o.tcp ? "" : revision},
                   {"calls", all.size()},
                   {"errors", errors},
                   {"seconds", secs},
                   {"calls_per_s", all.size() / secs},
                   {"p50_us", pct(0.50)},
                   {"p90_us", pct(0.90)},
                   {"p99_us", pct(0.99)},
                   {"max_us", all.empty() ? 0 : all.back()}};
  if (!first_error.empty()) out["first_error"] = first_error;
  std::cout << json::serialize(out) << std::endl;
  return all.empty() ? 1 : 0;
}
