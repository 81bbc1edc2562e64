// What both connector programs (mcp-tunnel, sandbox-agent start) share at start-up: the
// connector flags — endpoint, token (--token, --token-file or AIRLOCK_TOKEN), TLS verification
// (--ca-file, --pin-sha256, or the loudly logged --insecure-skip-tls-verify), HA links, drain,
// the loopback metrics address, the log level — checked once with the same messages; and the
// daemon loop: run until the connector stops or SIGINT/SIGTERM, then drain, then exit.
// Start-up code on the main thread; errors are thrown as ConfigError.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <sstream>
#include <string>

#include "common/connector.h"
#include "common/http_server.h"

namespace CLI {
class App;
}

namespace airlock {

struct ConnectorFlags {
  std::string endpoint, token, token_file, ca_file, pin, metrics_addr;
  std::string drain = "30s", log_level = "info";
  bool insecure = false;
  int ha = 2;

  // Adds the flags to `command`.
  void add_to(CLI::App& command);
  // The connector's options; `create_hint` is the command that mints a token
  // ("airlock tunnel create NAME"). Throws ConfigError saying which flag is wrong and what to do.
  ConnectorOptions to_options(const std::string& create_hint) const;
};

// Options for a listener on `addr` ("127.0.0.1:9464", "[::1]:9464"); throws ConfigError unless
// it is a loopback address (connectors listen on nothing reachable from the network).
HttpServerOptions loopback_listener(const std::string& addr);

// The opt-in /ready and /metrics listener of a daemon: bound on the loopback `addr` now (throws
// ConfigError, or what binding throws) and logged; the caller serve()s it.
std::unique_ptr<HttpServer> metrics_listener(boost::asio::any_io_executor ex,
                                             const std::string& addr, HttpServer::Handler handler);

// Runs `run` on `io` until it returns or SIGINT/SIGTERM arrives, then `stop` (which drains);
// the loop ends when `stop` completes. Returns the exit status: 0, or 1 when either coroutine
// threw (logged).
int run_until_stopped(boost::asio::io_context& io, const char* program,
                      std::function<boost::asio::awaitable<void>()> run,
                      std::function<boost::asio::awaitable<void>()> stop);

}  // namespace airlock
