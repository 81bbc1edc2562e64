// tcp_relay: copies bytes between each accepted connection and a new connection to a target,
// and does nothing else — one thread, Asio, TCP_NODELAY both ways. Two of them in a row give the
// floor for any gateway that sits two process hops away from its upstream (Airlock: airlockd and
// mcp-tunnel): what the extra hops alone cost on the machine, before any gateway work.
//
//   tcp_relay LISTEN_PORT TARGET_PORT        (127.0.0.1 on both sides)
#include <boost/asio.hpp>

#include <array>
#include <cstdlib>
#include <iostream>
#include <memory>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

namespace {

asio::awaitable<void> copy(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to) {
  std::array<char, 64 * 1024> buffer;
  while (true) {
    auto [ec, n] = co_await from->async_read_some(asio::buffer(buffer), kUseTuple);
    if (ec) break;
    auto [wec, wn] = co_await asio::async_write(*to, asio::buffer(buffer.data(), n), kUseTuple);
    if (wec) break;
  }
  boost::system::error_code ignored;
  to->shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> relay(tcp::socket accepted, tcp::endpoint target) {
  auto in = std::make_shared<tcp::socket>(std::move(accepted));
  auto out = std::make_shared<tcp::socket>(in->get_executor());
  auto [ec] = co_await out->async_connect(target, kUseTuple);
  if (ec) co_return;
  in->set_option(tcp::no_delay(true));
  out->set_option(tcp::no_delay(true));
  auto executor = in->get_executor();
  asio::co_spawn(executor, copy(in, out), asio::detached);
  asio::co_spawn(executor, copy(out, in), asio::detached);
}

}  // namespace

int main(int argc, char** argv) {
  const int listen_port = argc == 3 ? std::atoi(argv[1]) : 0;
  const int target_port = argc == 3 ? std::atoi(argv[2]) : 0;
  if (listen_port <= 0 || listen_port > 65535 || target_port <= 0 || target_port > 65535) {
    std::cerr << "usage: tcp_relay LISTEN_PORT TARGET_PORT   (both on 127.0.0.1)\n";
    return 2;
  }
  const auto loopback = asio::ip::make_address("127.0.0.1");
  asio::io_context io(1);
  tcp::acceptor acceptor(io, {loopback, static_cast<unsigned short>(listen_port)});
  const tcp::endpoint target(loopback, static_cast<unsigned short>(target_port));
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    while (true) {
      auto [ec, socket] = co_await acceptor.async_accept(kUseTuple);
      if (ec) co_return;
      asio::co_spawn(io, relay(std::move(socket), target), asio::detached);
    }
  }, asio::detached);
  io.run();
}
