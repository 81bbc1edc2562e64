// Streamable HTTP client transport for http(s):// upstreams (MCP 2025-11-25 / 2025-06-18):
// every message is a POST; answers come back as JSON or as an SSE stream whose messages are
// tagged with the request they belong to; a GET stream carries what the server sends on its
// own; the session id from initialize rides on every request; 404 means the session is gone.
// A server used without a session (2026-07-28) gets, per request, the revision's
// MCP-Protocol-Version, Mcp-Method and Mcp-Name headers taken from the message, no GET stream,
// and no resumption; abandoning a request closes its connection, which cancels it there.
// Connections are kept alive and reused. This is the only TU of mcp-tunnel that instantiates
// Beast's HTTP templates.
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <cstring>
#include <set>

#include "common/jsonrpc.h"
#include "common/mcp_revision.h"
#include "common/tls.h"
#include "tunnel/upstream.h"

namespace airlock::tunnel {
namespace {
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

struct Conn {
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  void abort() {
    boost::system::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().socket().close(ec);
  }
};

struct State : std::enable_shared_from_this<State> {
  State(asio::any_io_executor e, const UpstreamServer& s, Injection i)
      : ex(e), server(s), injection(std::move(i)), inbox(e) {}

  asio::any_io_executor ex;
  UpstreamServer server;
  Injection injection;
  Inbox inbox;
  bool use_tls = false;
  std::string host, port, target, host_header;
  std::shared_ptr<asio::ssl::context> tls_ctx;
  tls::ClientOptions tls_options;
  std::string session_id;
  std::string protocol_version;
  bool stateless = false;  // 2026-07-28: no session; headers from each message
  bool closed = false;
  std::vector<std::unique_ptr<Conn>> idle;
  std::set<Conn*> active;
  // Requests in flight by id key, with the connection carrying each (null while dialing), and
  // those abandoned meanwhile.
  std::map<std::string, Conn*> in_flight;
  std::set<std::string> abandoned;

  std::string where() const { return "http server '" + server.name + "' (" + server.url + ")"; }

  asio::awaitable<std::unique_ptr<Conn>> dial(std::string& error) {
    tcp::resolver resolver(ex);
    asio::steady_timer deadline(ex, server.connect_timeout);
    deadline.async_wait([&](boost::system::error_code ec) {
      if (!ec) resolver.cancel();
    });
    auto [rec, results] = co_await resolver.async_resolve(host, port, kUseTuple);
    deadline.cancel();
    if (rec) {
      error = "cannot resolve '" + host + "': " + rec.message();
      co_return nullptr;
    }
    auto c = std::make_unique<Conn>();
    beast::tcp_stream stream(ex);
    stream.expires_after(server.connect_timeout);
    auto [cec, ep] = co_await stream.async_connect(results, kUseTuple);
    if (cec) {
      error = cec == beast::error::timeout
                  ? "no connection to " + host + ":" + port + " within " +
                        std::to_string(server.connect_timeout.count()) + " ms"
                  : "cannot connect to " + host + ":" + port + ": " + cec.message();
      co_return nullptr;
    }
    boost::system::error_code ignored;
    stream.socket().set_option(tcp::no_delay(true), ignored);
    if (!use_tls) {
      c->plain.emplace(std::move(stream));
      co_return c;
    }
    c->tls.emplace(std::move(stream), *tls_ctx);
    tls::prepare_client(c->tls->native_handle(), host, tls_options);
    beast::get_lowest_layer(*c->tls).expires_after(server.connect_timeout);
    auto [hec] = co_await c->tls->async_handshake(asio::ssl::stream_base::client, kUseTuple);
    if (hec) {
      error = tls::describe_handshake_failure(c->tls->native_handle(), hec, host, tls_options);
      co_return nullptr;
    }
    co_return c;
  }

  // The server's configured headers, with the secrets loaded now. False with `error` when a
  // secret is missing: the request is not sent at all.
  bool add_credentials(http::request<http::string_body>& req, std::string& error) {
    std::vector<std::pair<std::string, std::string>> values;
    if (!injection.expand(server.headers, values, error)) {
      error = "cannot send to " + where() + ": headers." + error;
      return false;
    }
    for (auto& [name, value] : values) {
      req.set(name, value);
      explicit_bzero(value.data(), value.size());
    }
    return true;
  }

  http::request<http::string_body> make_request(http::verb verb, std::string body) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, host_header);
    req.set(http::field::user_agent, "mcp-tunnel/" AIRLOCK_VERSION);
    if (verb == http::verb::post) {
      req.set(http::field::content_type, "application/json");
      req.set(http::field::accept, "application/json, text/event-stream");
    } else if (verb == http::verb::get) {
      req.set(http::field::accept, "text/event-stream");
    }
    if (!session_id.empty()) req.set("Mcp-Session-Id", session_id);
    if (!protocol_version.empty()) req.set("MCP-Protocol-Version", protocol_version);
    req.keep_alive(true);
    req.body() = std::move(body);
    req.prepare_payload();
    return req;
  }

  // 2026-07-28: what the body says, repeated in headers so that the server (and anything in
  // between) can route and authorize without parsing it.
  void set_revision_headers(http::request<http::string_body>& req, const json::object& message) {
    const json::value* params = message.if_contains("params");
    const json::object* p = params && params->is_object() ? &params->as_object() : nullptr;
    const json::value* meta = p ? p->if_contains("_meta") : nullptr;
    const json::value* version =
        meta && meta->is_object() ? meta->as_object().if_contains(mcp::kMetaVersion) : nullptr;
    const json::value* method = message.if_contains("method");
    if (!version || !version->is_string() || !method || !method->is_string()) return;
    req.set("MCP-Protocol-Version", std::string_view(version->as_string()));
    req.set("Mcp-Method", std::string_view(method->as_string()));
    if (const std::string_view field = mcp::name_field(method->as_string()); !field.empty()) {
      const json::value* name = p->if_contains(field);
      if (name && name->is_string()) {
        req.set("Mcp-Name", mcp::encode_header_value(std::string_view(name->as_string())));
      }
    }
    // Arguments the tool's schema asks to see as Mcp-Param-* headers.
    const json::value* tool = p->if_contains("name");
    if (method->as_string() != "tools/call" || !injection.tool_schema || !tool ||
        !tool->is_string()) {
      return;
    }
    const json::object* schema = injection.tool_schema(std::string_view(tool->as_string()));
    if (!schema) return;
    const json::value* args = p->if_contains("arguments");
    std::vector<mcp::HeaderParam> mirrored;
    std::string invalid;
    if (!mcp::header_params(*schema, args ? *args : json::value(json::object{}), mirrored,
                            invalid)) {
      spdlog::warn("{}: tool '{}' has an invalid x-mcp-header ({}); called without its headers",
                   where(), std::string_view(tool->as_string()), invalid);
      return;
    }
    for (const auto& m : mirrored) {
      if (m.value) req.set("Mcp-Param-" + m.header, mcp::encode_header_value(*m.value));
    }
  }

  // One exchange on `c`: writes `req`, reads the header into `parser`. Visits the stream type.
  template <class S>
  static asio::awaitable<boost::system::error_code> exchange(
      S& s, Conn& c, http::request<http::string_body>& req,
      http::response_parser<http::empty_body>& parser, std::chrono::milliseconds timeout) {
    beast::get_lowest_layer(s).expires_after(timeout);
    auto [wec, wn] = co_await http::async_write(s, req, kUseTuple);
    if (wec) co_return wec;
    auto [rec, rn] = co_await http::async_read_header(s, c.buffer, parser, kUseTuple);
    co_return rec;
  }

  // Reads an SSE body, pushing each message tagged with `related`. Returns the last event
  // id seen, and whether a response to `related` arrived.
  template <class S>
  asio::awaitable<boost::system::error_code> read_sse(S& s, Conn& c,
                                                      http::response_parser<http::empty_body>& p0,
                                                      const std::optional<json::value>& related,
                                                      std::string& last_id, bool& answered,
                                                      std::optional<long>& retry_ms) {
    http::response_parser<http::buffer_body> p{std::move(p0)};
    p.body_limit(boost::none);
    jsonrpc::SseParser sse(server.max_message);
    std::string buf(64 * 1024, '\0');
    beast::get_lowest_layer(s).expires_never();
    const std::string related_key = related ? jsonrpc::id_key(*related) : "";
    while (!p.is_done()) {
      p.get().body().data = buf.data();
      p.get().body().size = buf.size();
      // read_some: events must be handled as they arrive, not when 64 KiB have gathered.
      auto [ec, n] = co_await http::async_read_some(s, c.buffer, p, kUseTuple);
      if (ec && ec != http::error::need_buffer) co_return ec;
      const size_t got = buf.size() - p.get().body().size;
      if (!sse.feed(std::string_view(buf.data(), got))) {
        co_return make_error_code(Errc::kFrameTooLarge);
      }
      while (auto ev = sse.next()) {
        if (ev->has_id) last_id = ev->id;
        if (ev->retry_ms) retry_ms = ev->retry_ms;
        if (ev->data.empty()) continue;  // priming event
        std::string error;
        auto msg = jsonrpc::parse(ev->data, error);
        if (!msg) {
          spdlog::warn("{} sent an SSE event that is not a JSON-RPC message ({}); skipped", where(),
                       error);
          continue;
        }
        if (related && msg->kind == jsonrpc::Kind::kResponse &&
            jsonrpc::id_key(msg->id()) == related_key) {
          answered = true;
        }
        if (closed) co_return boost::system::error_code{};
        inbox.push(Inbound{std::move(msg->body), related});
      }
    }
    co_return boost::system::error_code{};
  }

  template <class S>
  asio::awaitable<Result<std::string>> read_string_body(
      S& s, Conn& c, http::response_parser<http::empty_body>& p0) {
    http::response_parser<http::string_body> p{std::move(p0)};
    p.body_limit(server.max_message);
    beast::get_lowest_layer(s).expires_after(server.request_timeout);
    auto [ec, n] = co_await http::async_read(s, c.buffer, p, kUseTuple);
    if (ec) co_return ec;
    co_return std::move(p.get().body());
  }

  void answer_error(const json::value& id, std::string message) {
    inbox.push(Inbound{jsonrpc::make_error(id, jsonrpc::kUpstreamUnavailable, message), id});
  }

  // Sends one message and handles whatever comes back. Runs detached per message.
  asio::awaitable<void> post(std::shared_ptr<State> self, json::object message) {
    std::optional<json::value> id;
    const bool is_request = message.contains("method") && message.contains("id");
    if (is_request) id = message.at("id");
    const std::string method =
        message.contains("method") ? std::string(message.at("method").as_string()) : "";
    std::string body = json::serialize(message);
    // Registered as in flight for abandon(); forgotten however this ends.
    struct InFlight {
      State& st;
      std::string key;
      ~InFlight() {
        st.in_flight.erase(key);
        st.abandoned.erase(key);
      }
    } tracked{*this, id ? jsonrpc::id_key(*id) : std::string()};
    if (id) in_flight[tracked.key] = nullptr;
    auto gave_up = [&] { return id && abandoned.count(tracked.key) > 0; };
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (closed || gave_up()) co_return;
      std::unique_ptr<Conn> c;
      const bool reused = !idle.empty();
      if (reused) {
        c = std::move(idle.back());
        idle.pop_back();
      } else {
        std::string error;
        c = co_await dial(error);
        if (!c) {
          if (id)
            answer_error(*id, where() + " is unreachable: " + error);
          else
            spdlog::warn("{}: dropped a {} message: {}", where(), method, error);
          co_return;
        }
      }
      if (gave_up()) {
        idle.push_back(std::move(c));
        co_return;
      }
      active.insert(c.get());
      if (id) in_flight[tracked.key] = c.get();
      auto req = make_request(http::verb::post, body);
      set_revision_headers(req, message);
      if (std::string cerr; !add_credentials(req, cerr)) {
        active.erase(c.get());
        idle.push_back(std::move(c));
        if (id)
          answer_error(*id, cerr);
        else
          spdlog::warn("{}: dropped a {} message: {}", where(), method, cerr);
        co_return;
      }
      http::response_parser<http::empty_body> parser;
      parser.body_limit(boost::none);
      // No co_await inside ?: — GCC 12 destroys the temporary twice.
      boost::system::error_code ec;
      if (c->tls)
        ec = co_await exchange(*c->tls, *c, req, parser, server.request_timeout);
      else
        ec = co_await exchange(*c->plain, *c, req, parser, server.request_timeout);
      if (ec) {
        active.erase(c.get());
        if (gave_up()) co_return;
        if (reused && !closed) continue;  // a kept-alive connection the server had closed
        if (id) {
          answer_error(*id, where() + " did not answer: " +
                                (ec == beast::error::timeout ? "timed out" : ec.message()));
        }
        co_return;
      }
      auto& res = parser.get();
      if (auto sid = res.find("mcp-session-id"); sid != res.end() && session_id.empty()) {
        session_id = std::string(sid->value());
      }
      const unsigned status = res.result_int();
      const std::string ctype = std::string(res[http::field::content_type]);
      spdlog::debug("{}: POST {} -> HTTP {} {}", where(), method.empty() ? "(response)" : method,
                    status, ctype);
      const bool keep = res.keep_alive();
      bool reusable = keep;
      if (status == 404 && !session_id.empty()) {
        active.erase(c.get());
        inbox.fail(where() + " ended the session (HTTP 404); it will be re-initialized");
        co_return;
      }
      if (status == 202) {
        Result<std::string> drained{make_error_code(Errc::kStreamClosed)};
        if (c->tls)
          drained = co_await read_string_body(*c->tls, *c, parser);
        else
          drained = co_await read_string_body(*c->plain, *c, parser);
        if (!drained) reusable = false;
      } else if (status == 200 && ctype.rfind("text/event-stream", 0) == 0) {
        std::string last_id;
        bool answered = false;
        std::optional<long> retry;
        boost::system::error_code sec;
        if (c->tls)
          sec = co_await read_sse(*c->tls, *c, parser, id, last_id, answered, retry);
        else
          sec = co_await read_sse(*c->plain, *c, parser, id, last_id, answered, retry);
        if (sec) reusable = false;
        if (id && !answered && !closed && !gave_up()) {
          if (!last_id.empty() && !stateless) {
            // 2025-11-25: the server may close a response stream early; resume it by GET.
            asio::co_spawn(ex, get_stream(self, last_id, id, retry.value_or(0)), asio::detached);
          } else {
            answer_error(*id, where() + " closed the response stream before answering" +
                                  (sec ? ": " + sec.message() : std::string()));
          }
        }
      } else {
        Result<std::string> text{make_error_code(Errc::kStreamClosed)};
        if (c->tls)
          text = co_await read_string_body(*c->tls, *c, parser);
        else
          text = co_await read_string_body(*c->plain, *c, parser);
        if (!text) reusable = false;
        if (status == 200 && ctype.rfind("application/json", 0) == 0 && text) {
          std::string error;
          auto msg = jsonrpc::parse(*text, error);
          if (msg) {
            inbox.push(Inbound{std::move(msg->body), id});
          } else if (id) {
            answer_error(*id, where() + " answered with invalid JSON-RPC: " + error);
          }
        } else if (id) {
          std::string snippet = text ? text->substr(0, 300) : std::string();
          answer_error(*id, where() + " answered HTTP " + std::to_string(status) +
                                (snippet.empty() ? "" : ": " + snippet));
        } else if (status >= 300) {
          spdlog::warn("{} answered HTTP {} to a {} message", where(), status, method);
        }
      }
      active.erase(c.get());
      if (reusable && !closed && idle.size() < 16) idle.push_back(std::move(c));
      co_return;
    }
  }

  // The GET stream: server-initiated messages, or the resumption of a POST's stream
  // (`resume_id` set). Reconnects with Last-Event-ID until the session closes.
  asio::awaitable<void> get_stream([[maybe_unused]] std::shared_ptr<State> self,
                                   std::string last_id, std::optional<json::value> related,
                                   long delay_ms) {
    int failures = 0;
    for (;;) {
      if (delay_ms > 0) {
        asio::steady_timer t(ex, std::chrono::milliseconds(delay_ms));
        co_await t.async_wait(kUseTuple);
      }
      if (closed) co_return;
      std::string error;
      auto c = co_await dial(error);
      if (!c) {
        if (++failures > 5) {
          if (related) answer_error(*related, where() + " stream could not be resumed: " + error);
          co_return;
        }
        delay_ms = 1000;
        continue;
      }
      active.insert(c.get());
      auto req = make_request(http::verb::get, "");
      if (!last_id.empty()) req.set("Last-Event-ID", last_id);
      if (std::string cerr; !add_credentials(req, cerr)) {
        active.erase(c.get());
        if (related) answer_error(*related, cerr);
        spdlog::warn("{}", cerr);
        co_return;
      }
      http::response_parser<http::empty_body> parser;
      boost::system::error_code ec;
      if (c->tls)
        ec = co_await exchange(*c->tls, *c, req, parser, server.connect_timeout);
      else
        ec = co_await exchange(*c->plain, *c, req, parser, server.connect_timeout);
      if (ec) {
        active.erase(c.get());
        if (++failures > 5) co_return;
        delay_ms = 1000;
        continue;
      }
      const unsigned status = parser.get().result_int();
      spdlog::debug("{}: GET stream -> HTTP {}", where(), status);
      if (status == 405) {
        active.erase(c.get());
        spdlog::debug("{} offers no GET stream (405)", where());
        co_return;
      }
      if (status == 404 && !session_id.empty()) {
        active.erase(c.get());
        inbox.fail(where() + " ended the session (HTTP 404); it will be re-initialized");
        co_return;
      }
      if (status != 200) {
        active.erase(c.get());
        spdlog::warn("{} refused the GET stream with HTTP {}", where(), status);
        if (related) answer_error(*related, where() + " refused to resume the response stream");
        co_return;
      }
      failures = 0;
      bool answered = false;
      std::optional<long> retry;
      if (c->tls) {
        co_await read_sse(*c->tls, *c, parser, related, last_id, answered, retry);
      } else {
        co_await read_sse(*c->plain, *c, parser, related, last_id, answered, retry);
      }
      active.erase(c.get());
      if (closed || (related && answered)) co_return;
      delay_ms = retry.value_or(1000);
    }
  }

  asio::awaitable<void> send_delete([[maybe_unused]] std::shared_ptr<State> self, std::string sid) {
    std::string error;
    auto c = co_await dial(error);
    if (!c) co_return;
    auto req = make_request(http::verb::delete_, "");
    req.set("Mcp-Session-Id", sid);
    if (std::string cerr; !add_credentials(req, cerr)) co_return;
    http::response_parser<http::empty_body> parser;
    if (c->tls)
      co_await exchange(*c->tls, *c, req, parser, std::chrono::seconds(2));
    else
      co_await exchange(*c->plain, *c, req, parser, std::chrono::seconds(2));
    c->abort();
  }
};

class HttpTransport final : public UpstreamTransport {
 public:
  HttpTransport(asio::any_io_executor ex, const UpstreamServer& s, const Injection& injection)
      : state_(std::make_shared<State>(ex, s, injection)) {}
  ~HttpTransport() override { close(); }

  asio::awaitable<bool> open(std::string& error) override {
    auto& st = *state_;
    auto u = boost::urls::parse_uri(st.server.url);
    if (!u) {
      error = "'" + st.server.url + "' is not a URL";
      co_return false;
    }
    st.use_tls = u->scheme() == "https";
    st.host = std::string(u->host_address());
    st.port = u->has_port() ? std::string(u->port()) : (st.use_tls ? "443" : "80");
    st.target = u->encoded_path().empty() ? "/" : std::string(u->encoded_path());
    if (u->has_query()) st.target += "?" + std::string(u->encoded_query());
    st.host_header = std::string(u->encoded_host_and_port());
    if (st.use_tls) {
      st.tls_options.ca_file = st.server.ca_file;
      try {
        st.tls_ctx = tls::make_client_context(st.tls_options);
      } catch (const std::exception& e) {
        error = e.what();
        co_return false;
      }
    }
    // Dial once now so that an unreachable server fails open() with a clear message.
    auto c = co_await st.dial(error);
    if (!c) co_return false;
    st.idle.push_back(std::move(c));
    co_return true;
  }

  bool send(const json::object& message, std::string& error) override {
    if (state_->closed || state_->inbox.failed()) {
      error = state_->inbox.failed() ? state_->inbox.why() : "session closed";
      return false;
    }
    asio::co_spawn(state_->ex, state_->post(state_, message), asio::detached);
    return true;
  }

  asio::awaitable<std::optional<Inbound>> receive(std::string& error) override {
    co_return co_await state_->inbox.receive(error);
  }

  void initialized(const std::string& protocol_version) override {
    if (protocol_version == mcp::kStatelessRevision) {
      state_->stateless = true;  // no session: nothing to resume, no GET stream to open
      return;
    }
    state_->protocol_version = protocol_version;
    asio::co_spawn(state_->ex, state_->get_stream(state_, "", std::nullopt, 0), asio::detached);
  }

  void close() override {
    auto& st = *state_;
    if (st.closed) return;
    st.closed = true;
    for (auto& c : st.idle) c->abort();
    st.idle.clear();
    for (auto* c : st.active) c->abort();
    st.inbox.fail("session closed");
    if (!st.session_id.empty()) {
      asio::co_spawn(st.ex, st.send_delete(state_, st.session_id), asio::detached);
    }
  }
  bool closed() const override { return state_->closed || state_->inbox.failed(); }

  void abandon(const json::value& id) override {
    auto& st = *state_;
    auto it = st.in_flight.find(jsonrpc::id_key(id));
    if (it == st.in_flight.end()) return;
    st.abandoned.insert(it->first);
    if (it->second) it->second->abort();
  }

 private:
  std::shared_ptr<State> state_;
};

}  // namespace

std::unique_ptr<UpstreamTransport> make_http_transport(asio::any_io_executor ex,
                                                       const UpstreamServer& server,
                                                       const Injection& injection) {
  return std::make_unique<HttpTransport>(ex, server, injection);
}

}  // namespace airlock::tunnel
