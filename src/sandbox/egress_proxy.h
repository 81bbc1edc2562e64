// EgressProxy: the only way out of a sandboxed run. It serves a listening socket that was
// created inside the run's network namespace (on its loopback) from this process, outside it,
// and applies the run's allowlist (allowlist.h) to every request:
//   CONNECT host:port      → allowlist → resolve → every address checked → 200 → the client's
//                            TLS ClientHello must carry SNI == host → dial exactly a checked
//                            address → bytes relayed both ways
//   GET http://host/path   → allowlist → resolve → check → dial → the request re-sent in
//                            origin form with "Connection: close" → bytes relayed
// A host that has a credential (EgressOptions::injector) is checked the same way, and then its
// CONNECT or request is handed to the injector instead of being relayed as bytes.
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
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "sandbox/allowlist.h"

namespace airlock::sandbox {

// Requests that carry a host-bound credential (http_credentials.h) are handed to this, after
// the allowlist and every address were checked and the upstream was dialed. Its coroutines run
// on the proxy's thread.
class CredentialInjector {
 public:
  // Dials the request's host again, at the addresses the proxy checked: a new connection for
  // one the upstream may have closed while it was idle. nullopt when no address answers.
  using Redial =
      std::function<boost::asio::awaitable<std::optional<boost::asio::ip::tcp::socket>>()>;

  virtual ~CredentialInjector() = default;
  // Whether requests for `host` (normalized) on `port` get a credential.
  virtual bool covers(std::string_view host, uint16_t port) const = 0;
  // The certificate (PEM) of the CA that signs what the injector presents for those hosts:
  // the sandbox must trust it. Never its key.
  virtual const std::string& ca_certificate_pem() const = 0;
  // A CONNECT, answered "200" already: the client's TLS ends here. Returns when the exchange
  // is over; closing the sockets (the proxy stopping) ends it.
  virtual boost::asio::awaitable<void> serve_tls(boost::asio::ip::tcp::socket client,
                                                 boost::asio::ip::tcp::socket upstream,
                                                 std::string host, uint16_t port,
                                                 Redial redial) = 0;
  // A plain-HTTP request: `received` holds its head and whatever followed it.
  virtual boost::asio::awaitable<void> serve_http(boost::asio::ip::tcp::socket client,
                                                  std::string received,
                                                  boost::asio::ip::tcp::socket upstream,
                                                  std::string host, uint16_t port,
                                                  Redial redial) = 0;
};

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
  // Adds host-bound credentials to the requests it covers; null: none.
  std::shared_ptr<CredentialInjector> injector;
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
  // The CA the sandbox must trust for host-bound credentials (PEM); empty when there are none.
  const std::string& ca_certificate_pem() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  std::thread thread_;
};

// The host's own addresses (every interface), for Allowlist::set_host_addresses.
std::vector<boost::asio::ip::address> local_addresses();

}  // namespace airlock::sandbox
