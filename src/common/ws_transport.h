// WsTransport: MessageTransport over a Beast WebSocket stream (plain TCP or TLS). Private to
// the two translation units that create WebSockets (http_server.cc, dialer.cc). Same threading
// as Link: one executor, never shared.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "common/link.h"

namespace airlock {
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;

template <class Next>
class WsTransport final : public MessageTransport {
 public:
  using Ws = websocket::stream<Next>;

  WsTransport(Ws&& ws, std::string remote, size_t max_message)
      : ws_(std::move(ws)), remote_(std::move(remote)) {
    ws_.binary(true);
    ws_.auto_fragment(false);
    ws_.read_message_max(max_message);
    // The link runs its own heartbeat (Beast's idle timer ignores pings the peer receives).
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = websocket::stream_base::none();
    t.keep_alive_pings = false;
    ws_.set_option(t);
  }

  asio::awaitable<boost::system::error_code> read(std::string_view& out) override {
    buffer_.clear();
    auto [ec, n] = co_await ws_.async_read(buffer_, asio::as_tuple(asio::use_awaitable));
    if (!ec && !ws_.got_binary()) ec = make_error_code(Errc::kBadPayload);
    out = std::string_view(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    co_return ec;
  }

  asio::awaitable<boost::system::error_code> write(std::string_view message) override {
    auto [ec, n] = co_await ws_.async_write(asio::buffer(message.data(), message.size()),
                                            asio::as_tuple(asio::use_awaitable));
    co_return ec;
  }

  asio::awaitable<void> close(uint16_t code, std::string reason) override {
    using namespace asio::experimental::awaitable_operators;
    if (ws_.is_open()) {
      asio::steady_timer t(ws_.get_executor(), std::chrono::seconds(1));
      co_await (ws_.async_close(websocket::close_reason(static_cast<websocket::close_code>(code), reason),
                                asio::as_tuple(asio::use_awaitable)) ||
                t.async_wait(asio::as_tuple(asio::use_awaitable)));
    }
    abort();
  }

  void abort() override {
    boost::system::error_code ec;
    beast::get_lowest_layer(ws_).socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

  const std::string& remote_address() const override { return remote_; }
  asio::any_io_executor executor() override { return ws_.get_executor(); }

 private:
  Ws ws_;
  std::string remote_;
  beast::flat_buffer buffer_;
};

using TcpStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

}  // namespace airlock
