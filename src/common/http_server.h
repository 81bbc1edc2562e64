// HttpServer: an HTTP/1.1 server (TLS or plain) on one executor that hands each request to a
// coroutine handler and each accepted WebSocket upgrade to an upgrade handler. Enforces a body
// limit (413), request and TLS handshake deadlines, and answers malformed requests with 400.
// Used by airlockd (API, /v1/connect) and by connectors' optional loopback metrics port.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/link.h"

namespace airlock {

struct HttpRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string remote;  // "ip:port" of the peer
  bool websocket_upgrade = false;
  // First header named `name` (lower-case), or empty.
  std::string header(std::string_view name) const;
  // Target without the query string.
  std::string path() const;
};

// A response body produced over time (Server-Sent Events). The server writes the header,
// then each chunk next() yields, until it yields nullopt. When a write fails (the client went
// away) the server calls client_gone() and stops. next() must itself bound its waits (a
// keep-alive comment every few seconds) so that a vanished client is noticed.
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  virtual asio::awaitable<std::optional<std::string>> next() = 0;
  virtual void client_gone() {}
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::shared_ptr<BodyStream> stream;  // set: a chunked, streamed body instead of `body`

  static HttpResponse json(int status, std::string body);
  // {"error": {"code": code, "message": message}}
  static HttpResponse error(int status, std::string_view code, std::string_view message);
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                            // 0: any free port; see HttpServer::port()
  std::shared_ptr<boost::asio::ssl::context> tls;  // null: plain HTTP
  size_t body_limit = 4 * 1024 * 1024;
  size_t header_limit = 16 * 1024;
  std::chrono::milliseconds request_timeout{30000};
  size_t max_ws_message = 4 * 1024 * 1024;
};

class HttpServer {
 public:
  using Handler = std::function<asio::awaitable<HttpResponse>(HttpRequest)>;
  // Decides on a WebSocket upgrade: nullopt accepts it, a response refuses it.
  using UpgradeCheck = std::function<std::optional<HttpResponse>(const HttpRequest&)>;
  using UpgradeHandler =
      std::function<asio::awaitable<void>(HttpRequest, std::unique_ptr<MessageTransport>)>;

  HttpServer(asio::any_io_executor ex, HttpServerOptions options, Handler handler,
             UpgradeCheck upgrade_check = nullptr, UpgradeHandler on_upgrade = nullptr);
  ~HttpServer();

  // Binds and listens. Throws std::system_error naming the address on failure.
  void listen();
  uint16_t port() const;
  // Accepts connections until stop(). Each connection runs detached on the same executor.
  asio::awaitable<void> serve();
  // Stops accepting; connections already open finish on their own.
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace airlock
