#include "common/connector_cli.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cctype>
#include <cstdlib>

#include "common/config_util.h"

namespace airlock {

void ConnectorFlags::add_to(CLI::App& start) {
  start.add_option("--endpoint", endpoint, "airlockd's connector URL: wss://HOST[:PORT]/v1/connect")
      ->required();
  start.add_option("--token", token, "connector token (visible to other local users in ps; "
                                     "prefer --token-file or AIRLOCK_TOKEN)");
  start.add_option("--token-file", token_file, "file holding the connector token")
      ->check(CLI::ExistingFile);
  start.add_option("--ca-file", ca_file, "PEM CA that signs airlockd's certificate")
      ->check(CLI::ExistingFile);
  start.add_option("--pin-sha256", pin, "SHA-256 fingerprint of airlockd's CA or certificate");
  start.add_flag("--insecure-skip-tls-verify", insecure,
                 "accept any server certificate (experiments only; logged loudly)");
  start.add_option("--ha-connections", ha, "links kept open to airlockd")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  start.add_option("--metrics-addr", metrics_addr, "loopback HOST:PORT for /ready and /metrics");
  start.add_option("--drain-timeout", drain, "grace for in-flight calls on SIGTERM")
      ->capture_default_str();
  start.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
}

ConnectorOptions ConnectorFlags::to_options(const std::string& create_hint) const {
  ConnectorOptions options;
  std::string error;
  auto ep = parse_endpoint(endpoint, error);
  if (!ep) throw ConfigError("--endpoint: " + error);
  options.dial.endpoint = *ep;
  if (!token.empty() + !token_file.empty() > 1) {
    throw ConfigError("give the token once: --token or --token-file");
  }
  std::string t = token;
  if (!token_file.empty()) {
    t = read_first_line(token_file);
  } else if (t.empty()) {
    if (const char* env = std::getenv("AIRLOCK_TOKEN")) t = env;
  } else {
    spdlog::warn("--token on the command line is visible to other local users; prefer "
                 "--token-file or the AIRLOCK_TOKEN environment variable");
  }
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  if (t.empty()) {
    throw ConfigError("no token: pass --token-file FILE or set AIRLOCK_TOKEN (mint one with '" +
                      create_hint + "')");
  }
  options.dial.token = t;
  options.dial.mint_hint = create_hint;
  if (!ca_file.empty() + !pin.empty() + insecure > 1) {
    throw ConfigError("choose one of --ca-file, --pin-sha256 and --insecure-skip-tls-verify");
  }
  if (!pin.empty() && tls::normalize_pin(pin).empty()) {
    throw ConfigError("--pin-sha256 must be 64 hex digits, optionally 'sha256:'-prefixed and "
                      "colon-separated (airlockd prints it at start-up)");
  }
  options.dial.tls = {.ca_file = ca_file, .pin_sha256 = pin, .insecure_skip_verify = insecure};
  options.ha_connections = ha;
  auto d = parse_duration(drain);
  if (!d) throw ConfigError("--drain-timeout must be a duration such as 30s");
  options.drain_timeout = *d;
  return options;
}

std::unique_ptr<HttpServer> metrics_listener(boost::asio::any_io_executor ex,
                                             const std::string& addr, HttpServer::Handler handler) {
  auto server = std::make_unique<HttpServer>(ex, loopback_listener(addr), std::move(handler));
  server->listen();
  spdlog::info("metrics and readiness on http://{}/metrics and /ready", addr);
  return server;
}

HttpServerOptions loopback_listener(const std::string& addr) {
  const auto colon = addr.rfind(':');
  HttpServerOptions http;
  http.host = colon == std::string::npos ? "" : addr.substr(0, colon);
  if (http.host.size() > 2 && http.host.front() == '[') {
    http.host = http.host.substr(1, http.host.size() - 2);
  }
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(http.host, ec);
  if (ec || !ip.is_loopback()) {
    throw ConfigError("--metrics-addr must be a loopback address such as 127.0.0.1:9464 "
                      "(connectors listen on nothing reachable from the network)");
  }
  try {
    http.port = static_cast<uint16_t>(std::stoul(addr.substr(colon + 1)));
  } catch (const std::exception&) {
    throw ConfigError("--metrics-addr port is not a number: " + addr);
  }
  return http;
}

int run_until_stopped(boost::asio::io_context& io, const char* program,
                      std::function<boost::asio::awaitable<void>()> run,
                      std::function<boost::asio::awaitable<void>()> stop) {
  namespace asio = boost::asio;
  int exit_code = 0;
  // run() returns as soon as a stop begins; the loop must keep going until stop() has drained,
  // so only stop() ends it.
  bool stopping = false;
  auto failed = [&](std::exception_ptr e, const char* what) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::critical("{}{}", what, ex.what());
      exit_code = 1;
    }
  };
  auto begin_stop = [&](const char* why) {
    if (stopping) return;
    stopping = true;
    spdlog::info("{}; draining", why);
    asio::co_spawn(io, stop(), [&](std::exception_ptr e) {
      failed(e, "while stopping: ");
      io.stop();
    });
  };
  asio::co_spawn(io, run(), [&](std::exception_ptr e) {
    failed(e, "");
    begin_stop("the connector stopped");
  });
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (!ec) begin_stop(sig == SIGINT ? "received SIGINT" : "received SIGTERM");
  });
  io.run();
  spdlog::info("{} stopped", program);
  return exit_code;
}

}  // namespace airlock
