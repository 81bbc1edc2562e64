// EgressProxy: the only way out of a sandboxed run. It serves a listening socket that was
// created inside the run's network namespace (on its loopback) from this process, outside it,
// and applies the run's allowlist (allowlist.h) to every request:
//   CONNECT host:port      → allowlist → resolve → every address checked → 200 → the client's
//                            TLS ClientHello must carry SNI == host → dial exactly a checked
//                            address → bytes relayed both ways
//   GET http://host/path   → allowlist → resolve → check → dial → the request re-sent in
//                            origin form with "Connection: close" → bytes relayed
// Everything else (origin-form requests, other schemes, a Host header naming another host, a
// CONNECT without TLS, requests for the proxy itself) is refused with a reason; every denial
// is logged with host and reason.
//
// Runs its own io_context on one thread (start/stop); all connection state lives on that
// thread. Thread-safe: start(), stop() and stats() may be called from the owner's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/allowlist.h"

namespace airlock::sandbox {

struct EgressOptions {
  Allowlist allowlist;
  // The port the proxy listens on inside the run (refused as a destination on loopback).
  uint16_t proxy_port = 3128;
  std::chrono::milliseconds header_timeout{10'000};   // request head / ClientHello
  std::chrono::milliseconds connect_timeout{10'000};  // resolution and dialing
  size_t max_connections = 256;
  size_t max_header_bytes = 16 * 1024;
  // Called once on the proxy's thread before it serves anything: the host's own addresses,
  // refused unless listed (Allowlist::set_host_addresses). Asking the kernel takes a moment
  // that a run's start-up need not wait for.
  std::function<std::vector<boost::asio::ip::address>()> host_addresses;
  // Called (on the proxy's thread) for every denial: host as requested, reason.
  std::function<void(const std::string& host, const std::string& reason)> on_denied;
};

struct EgressStats {
  uint64_t allowed = 0;
  uint64_t denied = 0;
};

class EgressProxy {
 public:
  explicit EgressProxy(EgressOptions options);
  ~EgressProxy();  // stop()
  EgressProxy(const EgressProxy&) = delete;
  EgressProxy& operator=(const EgressProxy&) = delete;

  // Takes ownership of `listen_fd` (a listening IPv4 TCP socket) and serves it on a thread.
  void start(int listen_fd);
  // Closes the listener and every connection, and joins the thread.
  void stop();
  EgressStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  std::thread thread_;
};

// The host's own addresses (every interface), for Allowlist::set_host_addresses.
std::vector<boost::asio::ip::address> local_addresses();

}  // namespace airlock::sandbox
