#include "common/http_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <system_error>

#include "common/log.h"
#include "common/ws_transport.h"

namespace airlock {
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string endpoint_string(const tcp::endpoint& ep) {
  const auto addr = ep.address();
  return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" +
         std::to_string(ep.port());
}
}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

std::string HttpRequest::path() const { return target.substr(0, target.find('?')); }

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::error(int status, std::string_view code, std::string_view message) {
  boost::json::object inner{{"code", code}, {"message", message}};
  return json(status, boost::json::serialize(boost::json::object{{"error", std::move(inner)}}));
}

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::any_io_executor ex, HttpServerOptions o, Handler h, UpgradeCheck c, UpgradeHandler u)
      : executor(ex), options(std::move(o)), handler(std::move(h)), upgrade_check(std::move(c)),
        on_upgrade(std::move(u)), acceptor(ex) {}

  asio::any_io_executor executor;
  HttpServerOptions options;
  Handler handler;
  UpgradeCheck upgrade_check;
  UpgradeHandler on_upgrade;
  tcp::acceptor acceptor;

  // Header, then chunks until the body stream ends. Returns an error when the client left.
  template <class Stream>
  static asio::awaitable<boost::system::error_code> write_streamed(Stream& stream,
                                                                   HttpResponse r) {
    http::response<http::empty_body> res{static_cast<http::status>(r.status), 11};
    res.set(http::field::server, "airlock/" AIRLOCK_VERSION);
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, "no-cache");
    for (const auto& [k, v] : r.headers) res.set(k, v);
    res.keep_alive(true);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    beast::get_lowest_layer(stream).expires_never();
    auto [ec, n] = co_await http::async_write_header(stream, sr, kUseTuple);
    if (ec) {
      r.stream->client_gone();
      co_return ec;
    }
    for (;;) {
      auto chunk = co_await r.stream->next();
      if (!chunk) break;
      if (chunk->empty()) continue;
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
      auto [wec, wn] =
          co_await asio::async_write(stream, http::make_chunk(asio::buffer(*chunk)), kUseTuple);
      if (wec) {
        r.stream->client_gone();
        co_return wec;
      }
    }
    auto [lec, ln] = co_await asio::async_write(stream, http::make_chunk_last(), kUseTuple);
    co_return lec;
  }

  template <class Stream>
  static asio::awaitable<boost::system::error_code> write_response(Stream& stream,
                                                                   HttpResponse r,
                                                                   bool keep_alive) {
    if (r.stream) co_return co_await write_streamed(stream, std::move(r));
    http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
    res.set(http::field::server, "airlock/" AIRLOCK_VERSION);
    if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res.set(k, v);
    res.keep_alive(keep_alive);
    res.body() = std::move(r.body);
    res.prepare_payload();
    auto [ec, n] = co_await http::async_write(stream, res, kUseTuple);
    co_return ec;
  }

  // After refusing a request whose body is still arriving: read and drop the rest (bounded in
  // time and bytes) so that the client gets to read the answer instead of a connection reset
  // (closing a socket with unread input sends RST).
  template <class Stream>
  static asio::awaitable<void> discard_input(Stream& stream) {
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
    std::vector<char> scratch(64 * 1024);
    size_t total = 0;
    while (total < 64 * 1024 * 1024) {
      auto [ec, n] = co_await stream.async_read_some(asio::buffer(scratch), kUseTuple);
      if (ec) break;
      total += n;
    }
  }

  template <class Stream>
  asio::awaitable<void> session(Stream stream, std::string remote) {
    auto self = shared_from_this();
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(options.body_limit);
      parser.header_limit(static_cast<uint32_t>(options.header_limit));
      beast::get_lowest_layer(stream).expires_after(options.request_timeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kUseTuple);
      if (ec == http::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset || ec == beast::error::timeout ||
          ec == asio::error::operation_aborted) {
        break;
      }
      if (ec == http::error::body_limit) {
        co_await write_response(stream,
                                HttpResponse::error(413, "body_too_large",
                                                    "request body exceeds " +
                                                        std::to_string(options.body_limit) +
                                                        " bytes"),
                                false);
        co_await discard_input(stream);
        break;
      }
      if (ec) {
        if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
          co_await write_response(stream,
                                  HttpResponse::error(400, "bad_request",
                                                      "malformed HTTP request: " + ec.message()),
                                  false);
        }
        break;
      }
      auto& req = parser.get();
      HttpRequest r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      r.remote = remote;
      for (const auto& f : req) r.headers.emplace_back(lower(f.name_string()), f.value());
      r.websocket_upgrade = websocket::is_upgrade(req);
      if (r.websocket_upgrade) {
        std::optional<HttpResponse> refusal;
        if (!on_upgrade) {
          refusal = HttpResponse::error(404, "not_found", "no WebSocket endpoint at " + r.path());
        } else if (upgrade_check) {
          refusal = upgrade_check(r);
        }
        if (refusal) {
          co_await write_response(stream, *refusal, false);
          break;
        }
        beast::get_lowest_layer(stream).expires_never();
        websocket::stream<Stream> ws(std::move(stream));
        ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
          res.set(http::field::server, "airlock/" AIRLOCK_VERSION);
        }));
        auto [aec] = co_await ws.async_accept(req, kUseTuple);
        if (aec) {
          spdlog::debug("websocket accept from {} failed: {}", remote, aec.message());
          co_return;
        }
        auto transport = std::make_unique<WsTransport<Stream>>(std::move(ws), remote,
                                                               options.max_ws_message);
        co_await on_upgrade(std::move(r), std::move(transport));
        co_return;
      }
      r.body = std::move(req.body());
      const bool keep_alive = req.keep_alive();
      HttpResponse resp;
      try {
        resp = co_await handler(std::move(r));
      } catch (const std::exception& e) {
        spdlog::error("handler for {} {} failed: {}", req.method_string(), req.target(),
                      e.what());
        resp = HttpResponse::error(500, "internal", "internal error; see airlockd's log");
      }
      const auto wec = co_await write_response(stream, std::move(resp), keep_alive);
      if (wec || !keep_alive) break;
    }
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      co_await stream.async_shutdown(kUseTuple);
    }
    boost::system::error_code ignored;
    beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  asio::awaitable<void> connection(tcp::socket socket) {
    auto self = shared_from_this();
    boost::system::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    const auto ep = socket.remote_endpoint(ec);
    const std::string remote = ec ? "unknown" : endpoint_string(ep);
    if (options.tls) {
      TlsStream stream(TcpStream(std::move(socket)), *options.tls);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
      auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kUseTuple);
      if (hec) {
        spdlog::info("TLS handshake with {} failed: {}", remote, hec.message());
        co_return;
      }
      co_await session(std::move(stream), remote);
    } else {
      co_await session(TcpStream(std::move(socket)), remote);
    }
  }
};

HttpServer::HttpServer(asio::any_io_executor ex, HttpServerOptions options, Handler handler,
                       UpgradeCheck upgrade_check, UpgradeHandler on_upgrade)
    : impl_(std::make_shared<Impl>(ex, std::move(options), std::move(handler),
                                   std::move(upgrade_check), std::move(on_upgrade))) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::listen() {
  auto& a = impl_->acceptor;
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(impl_->options.host, ec);
  if (ec) {
    throw std::system_error(ec, "listen address '" + impl_->options.host +
                                    "' is not an IP address");
  }
  const tcp::endpoint ep(addr, impl_->options.port);
  a.open(ep.protocol());
  a.set_option(tcp::acceptor::reuse_address(true));
  a.bind(ep, ec);
  if (ec) throw std::system_error(ec, "cannot listen on " + endpoint_string(ep));
  a.listen(asio::socket_base::max_listen_connections);
}

uint16_t HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

asio::awaitable<void> HttpServer::serve() {
  auto impl = impl_;
  while (impl->acceptor.is_open()) {
    auto [ec, socket] = co_await impl->acceptor.async_accept(kUseTuple);
    if (ec) {
      if (!impl->acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
      spdlog::warn("accept failed: {}; retrying", ec.message());
      asio::steady_timer t(impl->executor, std::chrono::milliseconds(100));
      co_await t.async_wait(kUseTuple);
      continue;
    }
    asio::co_spawn(impl->executor, impl->connection(std::move(socket)),
                   [](std::exception_ptr e) { log_failure(e, "a connection"); });
  }
}

void HttpServer::stop() {
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
}

}  // namespace airlock
