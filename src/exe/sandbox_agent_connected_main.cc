// sandbox-agent-connected: `sandbox-agent start` — the self-hosted sandbox, connected to
// airlockd (src/sandbox/connected_agent.h). sandbox-agent execs it for `start`, so that the
// one-shot `run` loads no TLS library; it also serves a `run` whose sandbox.yaml has
// http_credentials, whose proxy needs TLS. Flags only.
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "common/config_util.h"
#include "common/connector_cli.h"
#include "common/log.h"
#include "sandbox/agent_run.h"
#include "sandbox/connected_agent.h"
#include "sandbox/environment_worker.h"
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
  // `worker`: the same sandbox as a Claude Managed Agents environment worker.
  auto* worker = app.add_subcommand(
      "worker",
      "serve a Claude Managed Agents self-hosted environment: poll its work queue and "
      "run each session's tool calls (bash, read, write, edit, glob, grep, custom tools) "
      "in a sandbox of its own, until SIGTERM");
  std::string worker_config, environment_id, key_file, base_url, worker_id, ca_file;
  std::string worker_log_level = "info", worker_image_store = sandbox::kDefaultImageStore;
  double max_idle_s = 60;
  bool once = false;
  worker->add_option("--config", worker_config, "sandbox.yaml")
      ->required()
      ->check(CLI::ExistingFile);
  worker->add_option("--environment-id", environment_id,
                     "the self-hosted environment (default: $ANTHROPIC_ENVIRONMENT_ID)");
  worker
      ->add_option("--environment-key-file", key_file,
                   "a file holding the environment key (default: $ANTHROPIC_ENVIRONMENT_KEY, "
                   "which is removed from the process's environment once read)")
      ->check(CLI::ExistingFile);
  worker->add_option("--base-url", base_url,
                     "the API (default: $ANTHROPIC_BASE_URL, else https://api.anthropic.com)");
  worker
      ->add_option("--max-idle", max_idle_s,
                   "seconds a session may sit idle after its turn ends before its work is done")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  worker->add_flag("--once", once, "serve one work item, then exit");
  worker->add_option("--worker-id", worker_id,
                     "Anthropic-Worker-ID (default: the host name and a random suffix)");
  worker->add_option("--ca-file", ca_file, "trust only this CA (PEM) for the API's TLS");
  std::string worker_metrics;
  worker->add_option("--metrics-addr", worker_metrics,
                     "serve /ready and /metrics on this loopback HOST:PORT (off by default)");
  worker
      ->add_option("--image-store", worker_image_store,
                   "where layered images are unpacked and image references are looked up")
      ->capture_default_str();
  worker->add_option("--log-level", worker_log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  app.set_version_flag("--version", std::string("sandbox-agent ") + AIRLOCK_VERSION);
  CLI11_PARSE(app, argc, argv);
  if (*worker) {
    sandbox::EnvironmentWorkerOptions wo;
    try {
      init_logging("sandbox-agent", worker_log_level);
      auto from_env = [](const char* name) {
        const char* v = std::getenv(name);
        return std::string(v ? v : "");
      };
      wo.environment_id =
          environment_id.empty() ? from_env("ANTHROPIC_ENVIRONMENT_ID") : environment_id;
      if (!key_file.empty()) {
        wo.environment_key = read_first_line(key_file);
      } else {
        wo.environment_key = from_env("ANTHROPIC_ENVIRONMENT_KEY");
      }
      // The key stays in this process only: no child (no sandbox) inherits it.
      if (const char* k = std::getenv("ANTHROPIC_ENVIRONMENT_KEY")) {
        std::fill(const_cast<char*>(k), const_cast<char*>(k) + std::strlen(k), '\0');
        ::unsetenv("ANTHROPIC_ENVIRONMENT_KEY");
      }
      if (wo.environment_id.empty()) {
        throw std::runtime_error(
            "no environment id: pass --environment-id or set "
            "ANTHROPIC_ENVIRONMENT_ID");
      }
      if (wo.environment_key.empty()) {
        throw std::runtime_error(
            "no environment key: pass --environment-key-file or set "
            "ANTHROPIC_ENVIRONMENT_KEY (from the environment's page in "
            "Claude's console)");
      }
      wo.api.base_url = !base_url.empty()                         ? base_url
                        : !from_env("ANTHROPIC_BASE_URL").empty() ? from_env("ANTHROPIC_BASE_URL")
                                                                  : wo.api.base_url;
      wo.api.tls.ca_file = ca_file;
      wo.worker_id = worker_id;
      wo.once = once;
      wo.metrics_addr = worker_metrics;
      wo.max_idle = std::chrono::milliseconds(static_cast<int64_t>(max_idle_s * 1000));
      wo.pool.config = sandbox::load_sandbox_config(worker_config);
      if (const char* t = std::getenv("TMPDIR"); t && *t) wo.pool.runtime_dir = t;
      wo.pool.secrets = secrets::open_secret_store(wo.pool.config.secrets, /*report=*/true);
      std::string error;
      auto image = sandbox::resolve_image(
          wo.pool.config.image, worker_image_store,
          sandbox::pull_options_for(wo.pool.config, wo.pool.secrets->current().get()), error);
      if (!image) {
        spdlog::critical("cannot start: {}", error);
        return 1;
      }
      wo.pool.image = *image;
    } catch (const std::exception& e) {
      std::cerr << "sandbox-agent worker: " << e.what() << "\n";
      return 2;
    }
    ::mallopt(M_ARENA_MAX, static_cast<int>(4 * wo.pool.config.max_sessions + 64));
    boost::asio::io_context io(1);
    std::unique_ptr<sandbox::EnvironmentWorker> w;
    try {
      w = std::make_unique<sandbox::EnvironmentWorker>(io.get_executor(), std::move(wo));
      w->start();
    } catch (const std::exception& e) {
      spdlog::critical("cannot start: {}", e.what());
      return 1;
    }
    const int rc = run_until_stopped(
        io, "sandbox-agent", [&] { return w->run(); }, [&] { return w->stop(); });
    return rc != 0 ? rc : w->exit_code();
  }
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
