// sandbox-agent-connected: `sandbox-agent start` — the self-hosted sandbox, connected to
// airlockd (src/sandbox/connected_agent.h). sandbox-agent execs it for `start`, so that the
// one-shot `run` loads no TLS library; it also serves a `run` whose sandbox.yaml has
// http_credentials, whose proxy needs TLS. Flags only.
#include <malloc.h>
#include <sys/prctl.h>

#include <boost/asio/io_context.hpp>
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <iostream>

#include "common/config_util.h"
#include "common/connector_cli.h"
#include "common/log.h"
#include "sandbox/agent_run.h"
#include "sandbox/connected_agent.h"
#include "sandbox/http_credentials.h"
#include "sandbox/image.h"

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  // Holds secrets: no core dumps, no ptrace or /proc/PID/mem from other processes of the user.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  using namespace airlock;
  CLI::App app{"sandbox-agent — the self-hosted sandbox; dials out, listens on nothing"};
  app.require_subcommand(1);
  auto* start = app.add_subcommand(
      "start", "connect to airlockd and serve the agent toolset (bash, read, write, edit, glob, "
               "grep, web_fetch, custom tools) through /mcp, one sandbox per agent session, "
               "until SIGTERM");
  ConnectorFlags flags;
  flags.add_to(*start);
  std::string config_path, image_store = sandbox::kDefaultImageStore;
  start->add_option("--config", config_path, "sandbox.yaml")->required()->check(CLI::ExistingFile);
  start->add_option("--image-store", image_store,
                    "where layered images are unpacked and image references are looked up")
      ->capture_default_str();
  // sandbox-agent hands it a `run` whose sandbox.yaml has http_credentials.
  sandbox::RunCommandOptions run_options;
  std::string run_log_level = "info";
  auto* run = sandbox::add_run_command(app, run_options, run_log_level);
  app.set_version_flag("--version", std::string("sandbox-agent ") + AIRLOCK_VERSION);
  CLI11_PARSE(app, argc, argv);
  if (*run) {
    try {
      init_logging("sandbox-agent", run_log_level);
    } catch (const std::exception& e) {
      std::cerr << "sandbox-agent: " << e.what() << "\n";
      return 2;
    }
    run_options.credential_injector = sandbox::make_credential_injector;
    return sandbox::run_command(run_options);
  }

  sandbox::SandboxAgentOptions options;
  try {
    init_logging("sandbox-agent", flags.log_level);
    options.connector = flags.to_options("airlock sandbox create NAME");
    options.config = sandbox::load_sandbox_config(config_path);
    options.metrics_addr = flags.metrics_addr;
    if (const char* t = std::getenv("TMPDIR"); t && *t) options.runtime_dir = t;
    // Secrets are read before anything else runs and stay in this process (and the sandboxes
    // whose credentials name them) only.
    options.secrets = secrets::open_secret_store(options.config.secrets, /*report=*/true);
    // The image before anything else: a registry image is pulled now (`pull:`), so that the
    // hello names the digest the sandboxes run.
    std::string error;
    auto image = sandbox::resolve_image(
        options.config.image, image_store,
        sandbox::pull_options_for(options.config, options.secrets->current().get()), error);
    if (!image) {
      spdlog::critical("cannot start: {}", error);
      return 1;
    }
    if (!image->digest.empty()) spdlog::info("image {} is {}", options.config.image, image->digest);
    options.image = *image;
  } catch (const std::exception& e) {
    std::cerr << "sandbox-agent: " << e.what() << "\n";
    return 2;
  }
  // Each session's sandbox is cloned from a runner thread, and the clone allocates before it
  // execs. glibc's malloc gives threads their own arena only up to M_ARENA_MAX (8 per core by
  // default); a clone made while another thread sharing its arena held the arena's lock would
  // wait forever. Room for every thread of every session (runner and egress proxy).
  ::mallopt(M_ARENA_MAX, static_cast<int>(4 * options.config.max_sessions + 64));
  boost::asio::io_context io(1);
  sandbox::SandboxAgent agent(io.get_executor(), options);
  try {
    agent.start();
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    return 1;
  }
  return run_until_stopped(
      io, "sandbox-agent", [&] { return agent.run(); }, [&] { return agent.stop(); });
}
