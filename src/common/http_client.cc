#include "common/http_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>

namespace airlock {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

template <class Stream>
asio::awaitable<HttpCallResult> exchange(Stream& stream, http::request<http::string_body>& req,
                                         std::chrono::milliseconds timeout) {
  HttpCallResult r;
  beast::get_lowest_layer(stream).expires_after(timeout);
  auto [wec, wn] = co_await http::async_write(stream, req, kUseTuple);
  if (wec) {
    r.error = "sending the request failed: " + wec.message();
    co_return r;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kUseTuple);
  if (rec) {
    r.error = "reading the answer failed: " + rec.message();
    co_return r;
  }
  r.status = parser.get().result_int();
  r.body = std::move(parser.get().body());
  co_return r;
}

asio::awaitable<HttpCallResult> call(const HttpClientOptions& o, http::verb verb,
                                     std::string path, std::string body,
                                     std::vector<std::pair<std::string, std::string>> headers) {
  HttpCallResult r;
  auto u = boost::urls::parse_uri(o.base_url);
  if (!u || (u->scheme() != "https" && u->scheme() != "http") || u->host().empty()) {
    r.error = "server URL '" + o.base_url + "' must look like https://HOST:PORT";
    co_return r;
  }
  const bool tls = u->scheme() == "https";
  const std::string host(u->host_address());
  const std::string port = u->has_port() ? std::string(u->port()) : (tls ? "443" : "80");
  auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  auto [dec, results] = co_await resolver.async_resolve(host, port, kUseTuple);
  if (dec) {
    r.error = "cannot resolve '" + host + "': " + dec.message();
    co_return r;
  }
  beast::tcp_stream tcp_stream(ex);
  tcp_stream.expires_after(o.timeout);
  auto [cec, ep] = co_await tcp_stream.async_connect(results, kUseTuple);
  if (cec) {
    r.error = "cannot connect to " + host + ":" + port + ": " + cec.message() +
              " (is airlockd running?)";
    co_return r;
  }
  http::request<http::string_body> req{verb, path, 11};
  req.set(http::field::host, host + ":" + port);
  req.set(http::field::user_agent, "airlock-cli/" AIRLOCK_VERSION);
  if (!o.bearer.empty()) req.set(http::field::authorization, "Bearer " + o.bearer);
  for (auto& [k, v] : headers) req.set(k, v);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();
  if (!tls) co_return co_await exchange(tcp_stream, req, o.timeout);

  auto ctx = tls::make_client_context(o.tls);
  beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), *ctx);
  tls::prepare_client(stream.native_handle(), host, o.tls);
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, kUseTuple);
  if (hec) {
    r.error = tls::describe_handshake_failure(stream.native_handle(), hec, host, o.tls);
    co_return r;
  }
  if (auto why = tls::check_pin(stream.native_handle(), host, o.tls); !why.empty()) {
    r.error = "TLS verification failed: " + why;
    co_return r;
  }
  co_return co_await exchange(stream, req, o.timeout);
}

}  // namespace

HttpCallResult http_call(const HttpClientOptions& options, const std::string& method,
                         const std::string& path, const std::string& body,
                         const std::vector<std::pair<std::string, std::string>>& headers) {
  asio::io_context io;
  HttpCallResult result;
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    result.error = "unknown HTTP method " + method;
    return result;
  }
  asio::co_spawn(io, call(options, verb, path, body, headers),
                 [&](std::exception_ptr e, HttpCallResult r) {
                   if (e) {
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       result.error = ex.what();
                     }
                     return;
                   }
                   result = std::move(r);
                 });
  io.run();
  return result;
}

}  // namespace airlock
