// Connector: the dial-out side shared by mcp-tunnel and sandbox-agent. Keeps `ha_connections`
// links to airlockd, each in its own reconnect loop with full-jitter exponential backoff;
// passes every stream airlockd opens to the stream handler; on stop() sends GOAWAY on every
// link and drains in-flight streams for a grace period. Listens on nothing.
// Runs on one executor; not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/backoff.h"
#include "common/dialer.h"
#include "common/handshake.h"
#include "common/link.h"

namespace airlock {

struct ConnectorOptions {
  DialOptions dial;
  proto::Hello hello;
  int ha_connections = 2;
  BackoffPolicy backoff;
  std::chrono::milliseconds drain_timeout{30000};
  // Called for every newly established link, once it runs (mcp-tunnel pushes its inventory).
  std::function<void(std::shared_ptr<Link>)> on_link_up;
  // What every link must keep out of the bytes it sends (see LinkOptions::redaction).
  std::function<std::shared_ptr<const redact::Patterns>()> redaction;
  std::function<void(uint32_t stream, const std::string& secret, uint64_t count)> on_redacted;
};

struct ConnectorStats {
  size_t active_links = 0;
  uint64_t connects = 0;        // links established
  uint64_t dial_failures = 0;   // attempts that did not reach an established link
  std::string last_error;       // most recent failure, for /ready and logs
  std::string resource_name;    // as confirmed by airlockd's ACCEPT
};

class Connector {
 public:
  Connector(asio::any_io_executor ex, ConnectorOptions options, Link::StreamHandler handler);

  // Runs the reconnect loops until stop() completes. Throws std::runtime_error if the TLS
  // options cannot be loaded (a missing CA file, say) — a start-up error.
  asio::awaitable<void> run();
  // Stops reconnecting, drains every link (GOAWAY, then up to drain_timeout for open
  // streams), and returns when all links are closed.
  asio::awaitable<void> stop();

  const ConnectorStats& stats() const { return stats_; }
  bool ready() const { return stats_.active_links > 0; }
  // The established links, for pushing updates on every one.
  std::vector<std::shared_ptr<Link>> links() const { return {links_.begin(), links_.end()}; }

 private:
  asio::awaitable<void> connection_loop(int index);
  // Sleeps for `d` unless stop() is called first.
  asio::awaitable<void> sleep(std::chrono::milliseconds d);

  asio::any_io_executor executor_;
  ConnectorOptions options_;
  Link::StreamHandler handler_;
  std::shared_ptr<asio::ssl::context> tls_context_;
  std::set<std::shared_ptr<Link>> links_;
  asio::steady_timer stop_signal_;
  bool stopping_ = false;
  int loops_running_ = 0;
  ConnectorStats stats_;
};

}  // namespace airlock
