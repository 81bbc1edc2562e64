// mcp-tunnel: the tunnel gateway that runs inside a private network and dials out to airlockd.
// Flags only; the gateway is tunnel::Tunnel.
#include <sys/prctl.h>

#include <csignal>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cctype>
#include <cstdlib>
#include <iostream>

#include "common/config_util.h"
#include "common/log.h"
#include "tunnel/tunnel.h"

int main(int argc, char** argv) {
  // A private server or agent that goes away must not kill the daemon mid-write.
  ::signal(SIGPIPE, SIG_IGN);
  // Holding secrets: no core dumps, and no ptrace or /proc/PID/mem from other processes of the
  // same user.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  namespace asio = boost::asio;
  using namespace airlock;
  CLI::App app{"mcp-tunnel — forwards MCP calls from airlockd to private MCP servers; dials out, "
               "listens on nothing"};
  app.require_subcommand(1);
  auto* start = app.add_subcommand("start", "connect to airlockd and serve until SIGTERM");
  std::string endpoint, token, token_file, ca_file, pin, config_path, metrics_addr, name;
  std::string drain = "30s", log_level = "info";
  std::vector<std::string> allowed{"*"};
  bool insecure = false;
  int ha = 2;
  start->add_option("--endpoint", endpoint, "airlockd's connector URL: wss://HOST[:PORT]/v1/connect")
      ->required();
  start->add_option("--token", token, "connector token (visible to other local users in ps; "
                                      "prefer --token-file or AIRLOCK_TOKEN)");
  start->add_option("--token-file", token_file, "file holding the connector token")
      ->check(CLI::ExistingFile);
  start->add_option("--ca-file", ca_file, "PEM CA that signs airlockd's certificate")
      ->check(CLI::ExistingFile);
  start->add_option("--pin-sha256", pin, "SHA-256 fingerprint of airlockd's CA or certificate");
  start->add_flag("--insecure-skip-tls-verify", insecure,
                  "accept any server certificate (experiments only; logged loudly)");
  start->add_option("--allowed-credentials", allowed,
                    "glob patterns of credential names this tunnel may inject (repeatable); "
                    "a server that needs any other is reported unavailable")
      ->capture_default_str();
  start->add_option("--config", config_path, "tunnel.yaml: the private MCP servers")
      ->check(CLI::ExistingFile);
  start->add_option("--name", name, "tunnel name; must match the token's (default: the token's)");
  start->add_option("--ha-connections", ha, "links kept open to airlockd")
      ->check(CLI::Range(1, 16))->capture_default_str();
  start->add_option("--metrics-addr", metrics_addr, "loopback HOST:PORT for /ready and /metrics");
  start->add_option("--drain-timeout", drain, "grace for in-flight calls on SIGTERM")
      ->capture_default_str();
  start->add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  app.set_version_flag("--version", std::string("mcp-tunnel ") + AIRLOCK_VERSION);
  CLI11_PARSE(app, argc, argv);

  tunnel::TunnelOptions options;
  try {
    init_logging("mcp-tunnel", log_level);
    std::string error;
    auto ep = parse_endpoint(endpoint, error);
    if (!ep) throw ConfigError("--endpoint: " + error);
    options.connector.dial.endpoint = *ep;
    if (!token.empty() + !token_file.empty() > 1) {
      throw ConfigError("give the token once: --token or --token-file");
    }
    if (!token_file.empty()) {
      token = read_first_line(token_file);
    } else if (token.empty()) {
      if (const char* env = std::getenv("AIRLOCK_TOKEN")) token = env;
    } else {
      spdlog::warn("--token on the command line is visible to other local users; prefer "
                   "--token-file or the AIRLOCK_TOKEN environment variable");
    }
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
      token.pop_back();
    }
    if (token.empty()) {
      throw ConfigError("no token: pass --token-file FILE or set AIRLOCK_TOKEN (mint one with "
                        "'airlock tunnel create NAME')");
    }
    options.connector.dial.token = token;
    if (!ca_file.empty() + !pin.empty() + insecure > 1) {
      throw ConfigError("choose one of --ca-file, --pin-sha256 and --insecure-skip-tls-verify");
    }
    if (!pin.empty() && tls::normalize_pin(pin).empty()) {
      throw ConfigError("--pin-sha256 must be 64 hex digits, optionally 'sha256:'-prefixed and "
                        "colon-separated (airlockd prints it at start-up)");
    }
    options.connector.dial.tls = {.ca_file = ca_file, .pin_sha256 = pin,
                                  .insecure_skip_verify = insecure};
    options.connector.ha_connections = ha;
    auto d = parse_duration(drain);
    if (!d) throw ConfigError("--drain-timeout must be a duration such as 30s");
    options.connector.drain_timeout = *d;
    if (!config_path.empty()) options.config = tunnel::load_tunnel_config(config_path);
    if (!name.empty()) {
      if (!options.config.name.empty() && options.config.name != name) {
        throw ConfigError("--name '" + name + "' differs from the config's name '" +
                          options.config.name + "'");
      }
      options.config.name = name;
    }
    options.allowed_credentials = allowed;
    options.metrics_addr = metrics_addr;
    // Secrets are read before anything else runs and stay in this process only.
    options.secrets = std::make_shared<secrets::SecretStore>(options.config.secrets);
    options.secrets->load();
    set_log_redaction([store = options.secrets] {
      auto set = store->current();
      return set ? set->patterns : nullptr;
    });
    if (auto set = options.secrets->current(); set && !set->values.empty()) {
      size_t unlocked = 0;
      for (const auto& [n, v] : set->values) unlocked += !v->locked();
      spdlog::info("{} secret(s) loaded{}", set->values.size(),
                   unlocked ? " (" + std::to_string(unlocked) +
                                  " not locked in memory: mlock needs CAP_IPC_LOCK or a larger "
                                  "RLIMIT_MEMLOCK)"
                            : "");
    }
  } catch (const std::exception& e) {
    std::cerr << "mcp-tunnel: " << e.what() << "\n";
    return 2;
  }

  asio::io_context io(1);
  tunnel::Tunnel gateway(io.get_executor(), options);
  try {
    gateway.start();
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    return 1;
  }
  int exit_code = 0;
  // run() returns as soon as a stop begins; the io loop must keep going until stop() has
  // drained the links and ended every server process, so only stop() ends it.
  bool stopping = false;
  // A coroutine's exception is logged and makes the exit status 1.
  auto failed = [&](std::exception_ptr e, const char* what) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::critical("{}{}", what, ex.what());
      exit_code = 1;
    }
  };
  auto stop = [&](const char* why) {
    if (stopping) return;
    stopping = true;
    spdlog::info("{}; draining", why);
    asio::co_spawn(io, gateway.stop(), [&](std::exception_ptr e) {
      failed(e, "while stopping: ");
      io.stop();
    });
  };
  asio::co_spawn(io, gateway.run(), [&](std::exception_ptr e) {
    failed(e, "");
    stop("the connector stopped");
  });
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (!ec) stop(sig == SIGINT ? "received SIGINT" : "received SIGTERM");
  });
  io.run();
  spdlog::info("mcp-tunnel stopped");
  return exit_code;
}
