// link_bench: the connector link against direct TCP on loopback, in one run.
//
// For each of {direct TCP, connector link} x {plain, TLS} it measures
//   - 64 B round trip (p50/p99): direct = 64 B written and echoed on one connection;
//     link = one whole stream per call (OPEN with the 64 B and END, echo, END), as a tool
//     call uses it;
//   - single-stream throughput: 256 MiB one way, answered with the byte count;
//   - 10-stream throughput: 10 x 64 MiB at once (10 connections for direct TCP);
// and, for the link, the memory of open streams (both ends, one process): heap growth while
// 5,000 idle streams are open, divided by 5,000.
//
// Usage: link_bench [--quick]   (--quick: 10x fewer iterations and bytes, for smoke runs)
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <spdlog/spdlog.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/tls.h"
#include "test/e2e/harness.h"

namespace airlock::bench {
using namespace airlock::test;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

struct Result {
  double p50_us = 0, p99_us = 0, single_mbs = 0, multi_mbs = 0, kb_per_stream = -1;
};

double mb_per_s(size_t bytes, Clock::duration d) {
  return bytes / 1e6 / std::chrono::duration<double>(d).count();
}

void percentiles(std::vector<double>& us, Result& r) {
  std::sort(us.begin(), us.end());
  r.p50_us = us[us.size() / 2];
  r.p99_us = us[us.size() * 99 / 100];
}

// Heap bytes in use (small-block arenas plus mmapped blocks): exact where RSS is blurred by
// pages the allocator keeps from earlier phases.
size_t heap_bytes() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// Runs `n` coroutines made by `make` at once and waits for all; rethrows the first failure.
template <class Make>
asio::awaitable<void> all_of(int n, Make make) {
  auto ex = co_await asio::this_coro::executor;
  int done = 0;
  std::exception_ptr failure;
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(ex, make(), [&](std::exception_ptr e) {
      if (e && !failure) failure = e;
      ++done;
    });
  }
  asio::steady_timer poll(ex);
  while (done < n) {
    poll.expires_after(std::chrono::milliseconds(1));
    co_await poll.async_wait(kTuple);
  }
  if (failure) std::rethrow_exception(failure);
}

// --- direct TCP / TLS ----------------------------------------------------------------------
// Protocol: 'E' then 64 B messages echoed forever; or 'S', an 8-byte length, that many bytes,
// answered with 8 bytes.
template <class Stream>
asio::awaitable<void> direct_serve(Stream s) {
  char mode = 0;
  auto [ec, n] = co_await asio::async_read(s, asio::buffer(&mode, 1), kTuple);
  if (ec) co_return;
  if (mode == 'E') {
    char buf[64];
    for (;;) {
      auto [rec, rn] = co_await asio::async_read(s, asio::buffer(buf), kTuple);
      if (rec) co_return;
      auto [wec, wn] = co_await asio::async_write(s, asio::buffer(buf), kTuple);
      if (wec) co_return;
    }
  }
  uint64_t want = 0;
  std::tie(ec, n) = co_await asio::async_read(s, asio::buffer(&want, 8), kTuple);
  std::vector<char> buf(1 << 20);
  uint64_t got = 0;
  while (!ec && got < want) {
    std::tie(ec, n) = co_await s.async_read_some(asio::buffer(buf), kTuple);
    got += n;
  }
  co_await asio::async_write(s, asio::buffer(&got, 8), kTuple);
}

struct DirectServer {
  IoThread thread;
  tcp::acceptor acceptor{thread.io(), {asio::ip::make_address("127.0.0.1"), 0}};
  std::shared_ptr<asio::ssl::context> tls;

  explicit DirectServer(std::shared_ptr<asio::ssl::context> t) : tls(std::move(t)) {
    asio::co_spawn(thread.io(), accept_loop(), asio::detached);
  }
  ~DirectServer() {
    thread.call([&] {
      acceptor.close();
      return 0;
    });
    thread.stop();
  }
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, sock] = co_await acceptor.async_accept(kTuple);
      if (ec) co_return;
      sock.set_option(tcp::no_delay(true));
      if (tls) {
        asio::co_spawn(thread.io(), [s = asio::ssl::stream<tcp::socket>(std::move(sock), *tls)]() mutable
                           -> asio::awaitable<void> {
                         auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::server, kTuple);
                         if (!hec) co_await direct_serve(std::move(s));
                       }, asio::detached);
      } else {
        asio::co_spawn(thread.io(), direct_serve(std::move(sock)), asio::detached);
      }
    }
  }
};

template <class Stream>
asio::awaitable<Stream> direct_connect(uint16_t port, std::shared_ptr<asio::ssl::context> tls,
                                       char mode);

template <>
asio::awaitable<tcp::socket> direct_connect(uint16_t port, std::shared_ptr<asio::ssl::context>,
                                            char mode) {
  tcp::socket s(co_await asio::this_coro::executor);
  co_await s.async_connect({asio::ip::make_address("127.0.0.1"), port}, asio::use_awaitable);
  s.set_option(tcp::no_delay(true));
  co_await asio::async_write(s, asio::buffer(&mode, 1), asio::use_awaitable);
  co_return s;
}

template <>
asio::awaitable<asio::ssl::stream<tcp::socket>> direct_connect(
    uint16_t port, std::shared_ptr<asio::ssl::context> tls, char mode) {
  asio::ssl::stream<tcp::socket> s(co_await asio::this_coro::executor, *tls);
  co_await s.next_layer().async_connect({asio::ip::make_address("127.0.0.1"), port},
                                        asio::use_awaitable);
  s.next_layer().set_option(tcp::no_delay(true));
  co_await s.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
  co_await asio::async_write(s, asio::buffer(&mode, 1), asio::use_awaitable);
  co_return s;
}

template <class Stream>
asio::awaitable<void> direct_bulk(uint16_t port, std::shared_ptr<asio::ssl::context> tls,
                                  uint64_t bytes) {
  auto s = co_await direct_connect<Stream>(port, tls, 'S');
  co_await asio::async_write(s, asio::buffer(&bytes, 8), asio::use_awaitable);
  const std::string chunk(1 << 20, 'x');
  for (uint64_t sent = 0; sent < bytes; sent += chunk.size()) {
    co_await asio::async_write(s, asio::buffer(chunk), asio::use_awaitable);
  }
  uint64_t got = 0;
  co_await asio::async_read(s, asio::buffer(&got, 8), asio::use_awaitable);
  if (got != bytes) throw std::runtime_error("direct bulk: byte count mismatch");
}

template <class Stream>
asio::awaitable<Result> direct_run(uint16_t port, std::shared_ptr<asio::ssl::context> tls,
                                   int calls, uint64_t single, uint64_t multi_each) {
  Result r;
  {
    auto s = co_await direct_connect<Stream>(port, tls, 'E');
    char buf[64] = {};
    std::vector<double> us;
    for (int i = 0; i < calls; ++i) {
      const auto t0 = Clock::now();
      co_await asio::async_write(s, asio::buffer(buf), asio::use_awaitable);
      co_await asio::async_read(s, asio::buffer(buf), asio::use_awaitable);
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    percentiles(us, r);
  }
  auto t0 = Clock::now();
  co_await direct_bulk<Stream>(port, tls, single);
  r.single_mbs = mb_per_s(single, Clock::now() - t0);
  t0 = Clock::now();
  co_await all_of(10, [&] { return direct_bulk<Stream>(port, tls, multi_each); });
  r.multi_mbs = mb_per_s(10 * multi_each, Clock::now() - t0);
  co_return r;
}

// --- connector link ------------------------------------------------------------------------
asio::awaitable<void> link_bulk(controlplane::ControlPlane* cp, uint64_t bytes) {
  auto s = cp->open_stream("tunnel", "bench", R"({"kind":"sink"})", "", false);
  if (!s) throw std::runtime_error("open: " + s.error().message());
  const std::string chunk(1 << 20, 'x');
  for (uint64_t sent = 0; sent < bytes; sent += chunk.size()) {
    if (co_await (*s)->write(chunk, sent + chunk.size() >= bytes)) {
      throw std::runtime_error("write failed: " + (*s)->reset_reason());
    }
  }
  auto answer = co_await (*s)->read_all(64);
  if (!answer || *answer != std::to_string(bytes)) throw std::runtime_error("sink count mismatch");
}

asio::awaitable<Result> link_run(controlplane::ControlPlane* cp, int calls, uint64_t single,
                                 uint64_t multi_each, int idle_streams) {
  Result r;
  const std::string body(64, 'p');
  std::vector<double> us;
  for (int i = 0; i < calls; ++i) {
    const auto t0 = Clock::now();
    auto s = cp->open_stream("tunnel", "bench", R"({"kind":"echo"})", body, true);
    if (!s) throw std::runtime_error("open: " + s.error().message());
    auto back = co_await (*s)->read_all(128);
    if (!back || *back != body) throw std::runtime_error("echo mismatch");
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  percentiles(us, r);
  auto t0 = Clock::now();
  co_await link_bulk(cp, single);
  r.single_mbs = mb_per_s(single, Clock::now() - t0);
  t0 = Clock::now();
  co_await all_of(10, [&] { return link_bulk(cp, multi_each); });
  r.multi_mbs = mb_per_s(10 * multi_each, Clock::now() - t0);
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer poll(ex);

  // Idle streams: open them, let both ends settle, measure, then reset them.
  const size_t before = heap_bytes();
  std::vector<std::shared_ptr<LinkStream>> open;
  for (int i = 0; i < idle_streams; ++i) {
    auto s = cp->open_stream("tunnel", "bench", R"({"kind":"stall"})", "", false);
    if (!s) throw std::runtime_error("open idle: " + s.error().message());
    open.push_back(*s);
  }
  poll.expires_after(std::chrono::milliseconds(500));
  co_await poll.async_wait(kTuple);
  r.kb_per_stream = (double(heap_bytes()) - double(before)) / idle_streams / 1024.0;
  for (auto& s : open) s->reset(proto::ResetCode::kCancel, "bench over");
  co_return r;
}

Result measure_link(bool tls, int calls, uint64_t single, uint64_t multi_each, int idle) {
  InProcessAirlockd a([&](controlplane::AirlockdConfig& c) {
    c.tls.plaintext = !tls;
    c.connectors.limits.max_streams = 16384;
  });
  auto options = connector_options(a, a.create("tunnel", "bench"), 1);
  options.hello.limits.max_streams = 16384;
  InProcessConnector conn(options, test_handler());
  if (!a.wait_status("tunnel", "bench", "Active", 1, std::chrono::seconds(10))) {
    throw std::runtime_error("connector did not connect");
  }
  return a.thread().run(link_run(&a.cp(), calls, single, multi_each, idle),
                        std::chrono::minutes(10));
}

Result measure_direct(bool tls, int calls, uint64_t single, uint64_t multi_each) {
  TempDir dir;
  std::shared_ptr<asio::ssl::context> server_ctx, client_ctx;
  if (tls) {
    auto certs = tls::ensure_self_managed_certs(dir.path, {"127.0.0.1"});
    server_ctx = tls::make_server_context(certs.cert_file, certs.key_file);
    client_ctx = tls::make_client_context({.ca_file = certs.ca_file});
  }
  DirectServer server(server_ctx);
  IoThread client;
  const uint16_t port = server.acceptor.local_endpoint().port();
  if (tls) {
    return client.run(direct_run<asio::ssl::stream<tcp::socket>>(port, client_ctx, calls, single,
                                                                 multi_each),
                      std::chrono::minutes(10));
  }
  return client.run(direct_run<tcp::socket>(port, nullptr, calls, single, multi_each),
                    std::chrono::minutes(10));
}

void print(const char* name, const Result& r) {
  std::printf("| %-22s | %8.1f | %8.1f | %9.0f | %9.0f | %s |\n", name, r.p50_us, r.p99_us,
              r.single_mbs, r.multi_mbs,
              r.kb_per_stream < 0 ? "—" : (std::to_string(r.kb_per_stream).substr(0, 4) + " KB").c_str());
}

}  // namespace airlock::bench

int main(int argc, char** argv) {
  using namespace airlock::bench;
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int calls = quick ? 2000 : 20000;
  const uint64_t single = (quick ? 32ull : 256ull) << 20;
  const uint64_t multi_each = (quick ? 8ull : 64ull) << 20;
  const int idle = quick ? 1000 : 5000;
  spdlog::set_level(spdlog::level::warn);
  std::printf("| path                   | p50 µs   | p99 µs   | 1 stream MB/s | 10 streams MB/s | memory per open stream |\n");
  std::printf("|------------------------|----------|----------|-----------|-----------|------|\n");
  print("direct TCP", measure_direct(false, calls, single, multi_each));
  print("connector link", measure_link(false, calls, single, multi_each, idle));
  print("direct TCP + TLS", measure_direct(true, calls, single, multi_each));
  print("connector link + TLS", measure_link(true, calls, single, multi_each, idle));
  return 0;
}
