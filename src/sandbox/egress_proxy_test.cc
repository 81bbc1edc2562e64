// EgressProxy in-process: what the agent relies on before the escape battery (Egress.* in
// test/e2e/sandbox_e2e_test.cc) drives it end to end.
#include "sandbox/egress_proxy.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

namespace airlock::sandbox {
namespace {

// The host's addresses are asked for once, on the proxy's own thread (off the run's start-up
// path), and before the first request is answered.
TEST(EgressProxy, AsksForTheHostsAddressesOnItsThreadBeforeServing) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 8), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  std::atomic<int> calls{0};
  std::thread::id asked_on;
  EgressOptions options;
  options.allowlist = Allowlist({"*.example.com"});
  options.host_addresses = [&] {
    asked_on = std::this_thread::get_id();
    ++calls;
    return std::vector<boost::asio::ip::address>{};
  };
  EgressProxy proxy(std::move(options));
  proxy.start(listener);

  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string request = "GET /origin-form HTTP/1.1\r\nHost: a.example.com\r\n\r\n";
  ASSERT_EQ(::write(client, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  char buf[256];
  const ssize_t n = ::read(client, buf, sizeof buf);
  ::close(client);
  proxy.stop();

  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 400", 0), 0u)
      << std::string(buf, static_cast<size_t>(n));
  EXPECT_EQ(calls.load(), 1);
  EXPECT_NE(asked_on, std::this_thread::get_id());
  EXPECT_NE(asked_on, std::thread::id());
  EXPECT_EQ(proxy.stats().denied, 1u);
}

}  // namespace
}  // namespace airlock::sandbox
