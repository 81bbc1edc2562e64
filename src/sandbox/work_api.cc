#include "sandbox/work_api.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>
#include <stdexcept>

namespace airlock::sandbox::managed {
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxBody = 64 * 1024 * 1024;

// "localhost" or a loopback address literal — not a name that merely starts like one.
bool is_loopback_host(std::string host) {
  if (host == "localhost") return true;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(host, ec);
  return !ec && ip.is_loopback();
}

// The API's error message from an error body, or the body's start.
std::string error_message(int status, const std::string& body) {
  std::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    if (auto* e = v.as_object().if_contains("error"); e && e->is_object()) {
      if (auto* m = e->as_object().if_contains("message"); m && m->is_string()) {
        return std::string(m->as_string());
      }
    }
  }
  std::string start = body.substr(0, 200);
  return start.empty() ? std::string(http::obsolete_reason(static_cast<http::status>(status)))
                       : start;
}

template <class Request>
void set_common(Request& req, const std::string& host, const std::string& bearer,
                const std::string& user_agent) {
  req.set(http::field::host, host);
  req.set(http::field::user_agent, user_agent);
  req.set(http::field::authorization, "Bearer " + bearer);
  req.set("anthropic-version", kApiVersion);
  req.set("anthropic-beta", kBeta);
}

}  // namespace

bool ApiResult::permanent() const {
  return status >= 400 && status < 500 && status != 408 && status != 409 && status != 429;
}

std::string ApiResult::describe() const {
  if (status == 0) return error;
  return "HTTP " + std::to_string(status) + (error.empty() ? "" : ": " + error);
}

void StreamStop::stop() {
  stopped_ = true;
  if (close_) close_();
}

struct ApiClient::Connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
};

ApiClient::ApiClient(asio::any_io_executor ex, ApiOptions options)
    : executor_(ex), options_(std::move(options)) {
  auto u = boost::urls::parse_uri(options_.base_url);
  if (!u || (u->scheme() != "https" && u->scheme() != "http") || u->host().empty()) {
    throw std::invalid_argument("the API base URL '" + options_.base_url +
                                "' must look like https://HOST[:PORT]");
  }
  tls_ = u->scheme() == "https";
  host_ = std::string(u->host_address());
  port_ = u->has_port() ? std::string(u->port()) : (tls_ ? "443" : "80");
  prefix_ = std::string(u->encoded_path());
  while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
  if (!tls_ && !is_loopback_host(host_)) {
    throw std::invalid_argument("the API base URL '" + options_.base_url +
                                "' is plain HTTP to a host that is not loopback: the "
                                "environment key would cross the network in clear; use https://");
  }
  if (tls_) ssl_ = tls::make_client_context(options_.tls);
  if (options_.user_agent.empty()) options_.user_agent = "sandbox-agent/" AIRLOCK_VERSION;
}

asio::awaitable<std::unique_ptr<ApiClient::Connection>> ApiClient::connect(
    std::chrono::milliseconds timeout, ApiResult& failure) {
  tcp::resolver resolver(executor_);
  auto [dec, results] = co_await resolver.async_resolve(host_, port_, kUseTuple);
  if (dec) {
    failure.error = "cannot resolve '" + host_ + "': " + dec.message();
    co_return nullptr;
  }
  auto c = std::make_unique<Connection>();
  beast::tcp_stream stream(executor_);
  stream.expires_after(timeout);
  auto [cec, ep] = co_await stream.async_connect(results, kUseTuple);
  if (cec) {
    failure.error = "cannot connect to " + host_ + ":" + port_ + ": " + cec.message();
    co_return nullptr;
  }
  stream.socket().set_option(tcp::no_delay(true));
  if (!tls_) {
    c->plain = std::make_unique<beast::tcp_stream>(std::move(stream));
    co_return c;
  }
  c->secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(stream), *ssl_);
  tls::prepare_client(c->secure->native_handle(), host_, options_.tls);
  auto [hec] = co_await c->secure->async_handshake(asio::ssl::stream_base::client, kUseTuple);
  if (hec) {
    failure.error =
        tls::describe_handshake_failure(c->secure->native_handle(), hec, host_, options_.tls);
    co_return nullptr;
  }
  if (auto why = tls::check_pin(c->secure->native_handle(), host_, options_.tls); !why.empty()) {
    failure.error = "TLS verification failed: " + why;
    co_return nullptr;
  }
  co_return c;
}

namespace {

// Writes the request; false with r.error set when that fails.
template <class Stream, class Request>
asio::awaitable<bool> send_request(Stream& stream, Request& req, ApiResult& r) {
  auto [ec, n] = co_await http::async_write(stream, req, kUseTuple);
  if (ec) r.error = "sending the request failed: " + ec.message();
  co_return !ec;
}

template <class Stream>
asio::awaitable<ApiResult> exchange(Stream& stream, http::request<http::string_body>& req) {
  ApiResult r;
  const bool sent = co_await send_request(stream, req, r);
  if (!sent) co_return r;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kUseTuple);
  if (rec) {
    r.error = "reading the answer failed: " + rec.message();
    co_return r;
  }
  r.status = parser.get().result_int();
  r.body = std::move(parser.get().body());
  if (r.status >= 400) r.error = error_message(r.status, r.body);
  co_return r;
}

template <class Stream>
asio::awaitable<ApiResult> read_events(Stream& stream, http::request<http::empty_body>& req,
                                       beast::tcp_stream& lowest, std::function<void()>& on_open,
                                       std::function<void(sse::Event)>& on_event) {
  ApiResult r;
  const bool sent = co_await send_request(stream, req, r);
  if (!sent) co_return r;
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, kUseTuple);
  if (hec) {
    r.error = "reading the answer failed: " + hec.message();
    co_return r;
  }
  r.status = parser.get().result_int();
  if (r.status != 200) {
    // An error answer: read its (small) body for the message.
    std::string body;
    char chunk[4096];
    while (!parser.is_done() && body.size() < 64 * 1024) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kUseTuple);
      body.append(chunk, sizeof chunk - parser.get().body().size);
      if (ec == http::error::need_buffer) continue;
      if (ec) break;
    }
    r.body = body;
    r.error = error_message(r.status, body);
    co_return r;
  }
  lowest.expires_never();
  on_open();
  sse::Parser events;
  char chunk[16 * 1024];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    auto [ec, n] = co_await http::async_read_some(stream, buffer, parser, kUseTuple);
    const size_t got = sizeof chunk - parser.get().body().size;
    if (got > 0) {
      if (!events.feed(std::string_view(chunk, got))) {
        r.error = "the event stream is malformed: " + events.error();
        co_return r;
      }
      while (auto e = events.next()) on_event(std::move(*e));
    }
    if (ec == http::error::need_buffer) continue;
    if (ec) {
      r.error = "the event stream broke: " + ec.message();
      co_return r;
    }
  }
  r.error = "the event stream ended";
  co_return r;
}

}  // namespace

asio::awaitable<ApiResult> ApiClient::call(
    const char* method, std::string target, const std::string& bearer, std::string body,
    std::chrono::milliseconds timeout, std::vector<std::pair<std::string, std::string>> headers) {
  ApiResult failure;
  auto c = co_await connect(timeout, failure);
  if (!c) co_return failure;
  http::request<http::string_body> req{http::string_to_verb(method), prefix_ + target, 11};
  set_common(req, host_, bearer, options_.user_agent);
  for (auto& [k, v] : headers) req.set(k, v);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();
  c->lowest().expires_after(timeout);
  if (c->secure) co_return co_await exchange(*c->secure, req);
  co_return co_await exchange(*c->plain, req);
}

asio::awaitable<ApiResult> ApiClient::stream(std::string target, const std::string& bearer,
                                             std::chrono::milliseconds connect_timeout,
                                             std::function<void()> on_open,
                                             std::function<void(sse::Event)> on_event,
                                             StreamStop& stop) {
  ApiResult failure;
  if (stop.stopped()) {
    failure.error = "stopped";
    co_return failure;
  }
  auto c = co_await connect(connect_timeout, failure);
  if (!c) co_return failure;
  if (stop.stopped()) {
    failure.error = "stopped";
    co_return failure;
  }
  beast::tcp_stream& lowest = c->lowest();
  stop.close_ = [&lowest] {
    boost::system::error_code ignored;
    lowest.socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest.cancel();
  };
  http::request<http::empty_body> req{http::verb::get, prefix_ + target, 11};
  set_common(req, host_, bearer, options_.user_agent);
  req.set(http::field::accept, "text/event-stream");
  lowest.expires_after(connect_timeout);
  // (Not a conditional expression: GCC 12 destroys a co_await's result twice in one.)
  ApiResult r;
  if (c->secure) {
    r = co_await read_events(*c->secure, req, lowest, on_open, on_event);
  } else {
    r = co_await read_events(*c->plain, req, lowest, on_open, on_event);
  }
  stop.close_ = nullptr;
  if (stop.stopped()) r.error = "stopped";
  co_return r;
}

}  // namespace airlock::sandbox::managed
