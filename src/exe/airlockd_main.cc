// airlockd: the Airlock control plane. Flags only; the daemon is ControlPlane.
#include <csignal>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#include "common/config_util.h"
#include "common/log.h"
#include "controlplane/server.h"

int main(int argc, char** argv) {
  // A private server or agent that goes away must not kill the daemon mid-write.
  ::signal(SIGPIPE, SIG_IGN);
  namespace asio = boost::asio;
  using namespace airlock;
  CLI::App app{"airlockd — the Airlock control plane: connectors dial in on /v1/connect, admins "
               "use /v1/..., health on /healthz"};
  std::string config_path, listen, state_dir, log_level;
  app.add_option("-c,--config", config_path, "airlockd.yaml (see docs/configuration.md)")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", listen, "HOST:PORT to listen on (overrides the config's listen)");
  app.add_option("--state-dir", state_dir, "directory for the database, CA and admin token");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error");
  app.set_version_flag("--version", std::string("airlockd ") + AIRLOCK_VERSION);
  CLI11_PARSE(app, argc, argv);

  controlplane::AirlockdConfig config;
  try {
    if (!config_path.empty()) config = controlplane::load_airlockd_config(config_path);
    if (!listen.empty()) controlplane::parse_listen(listen, config.listen_host, config.listen_port);
    if (!state_dir.empty()) config.state_dir = state_dir;
    if (!log_level.empty()) config.log_level = log_level;
    controlplane::validate(config);
    init_logging("airlockd", config.log_level);
  } catch (const std::exception& e) {
    std::cerr << "airlockd: " << e.what() << "\n";
    return 2;
  }

  asio::io_context io(1);
  controlplane::ControlPlane server(io.get_executor(), config);
  try {
    server.start();
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    return 1;
  }
  asio::co_spawn(io, server.serve(), asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("received signal {}; shutting down", sig);
    asio::co_spawn(io, server.shutdown(), [&](std::exception_ptr) { io.stop(); });
  });
  io.run();
  spdlog::info("airlockd stopped");
  return 0;
}
