// mcp-tunnel: the tunnel gateway that runs inside a private network and dials out to airlockd.
// Flags only; the gateway is tunnel::Tunnel.
#include <sys/prctl.h>

#include <csignal>
#include <boost/asio/io_context.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#include "common/config_util.h"
#include "common/connector_cli.h"
#include "common/log.h"
#include "tunnel/tunnel.h"

namespace {

int check_config(const std::string& path) {
  airlock::tunnel::TunnelConfig c;
  try {
    c = airlock::tunnel::load_tunnel_config(path);
  } catch (const std::exception& e) {
    std::cerr << "mcp-tunnel: " << e.what() << "\n";
    return 2;
  }
  std::cout << path << ": ok — " << c.servers.size() << " server(s)"
            << (c.name.empty() ? "" : ", tunnel '" + c.name + "'") << "\n";
  for (const auto& s : c.servers) {
    std::string creds;
    for (const auto& n : s.credentials) creds += (creds.empty() ? "" : ", ") + n;
    std::cout << "  " << s.name << ": " << s.url
              << (creds.empty() ? "" : " (credentials: " + creds + "; not read by check)")
              << "\n";
  }
  return 0;
}

}  // namespace

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
  ConnectorFlags flags;
  flags.add_to(*start);
  std::string config_path, name;
  std::vector<std::string> allowed{"*"};
  start->add_option("--allowed-credentials", allowed,
                    "glob patterns of credential names this tunnel may inject (repeatable); "
                    "a server that needs any other is reported unavailable")
      ->capture_default_str();
  start->add_option("--config", config_path, "tunnel.yaml: the private MCP servers")
      ->check(CLI::ExistingFile);
  start->add_option("--name", name, "tunnel name; must match the token's (default: the token's)");
  std::string check_path;
  auto* check = app.add_subcommand(
      "check", "check tunnel.yaml as start would (keys, URLs, templates, secrets named) without "
               "reading a secret or starting a server");
  check->add_option("--config", check_path, "tunnel.yaml")->required()->check(CLI::ExistingFile);
  app.set_version_flag("--version", std::string("mcp-tunnel ") + AIRLOCK_VERSION);
  CLI11_PARSE(app, argc, argv);
  if (*check) return check_config(check_path);

  tunnel::TunnelOptions options;
  try {
    init_logging("mcp-tunnel", flags.log_level);
    options.connector = flags.to_options("airlock tunnel create NAME");
    if (!config_path.empty()) options.config = tunnel::load_tunnel_config(config_path);
    if (!name.empty()) {
      if (!options.config.name.empty() && options.config.name != name) {
        throw ConfigError("--name '" + name + "' differs from the config's name '" +
                          options.config.name + "'");
      }
      options.config.name = name;
    }
    options.allowed_credentials = allowed;
    options.metrics_addr = flags.metrics_addr;
    // Secrets are read before anything else runs and stay in this process only.
    options.secrets = secrets::open_secret_store(options.config.secrets, /*report=*/true);
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
  return run_until_stopped(
      io, "mcp-tunnel", [&] { return gateway.run(); }, [&] { return gateway.stop(); });
}
