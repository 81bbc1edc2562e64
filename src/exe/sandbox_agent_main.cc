// sandbox-agent: runs tool commands inside the customer network, isolated per sandbox.yaml.
// Flags only; the work is in src/sandbox/.
#include <malloc.h>
#include <sys/prctl.h>

#include <boost/asio/io_context.hpp>
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>

#include "common/config_util.h"
#include "common/connector_cli.h"
#include "common/log.h"
#include "sandbox/agent_run.h"
#include "sandbox/connected_agent.h"
#include "sandbox/image.h"

namespace {

// `sandbox-agent start`: the connected agent until SIGTERM.
int start_agent(const airlock::ConnectorFlags& flags, const std::string& config_path,
                const std::string& image_store) {
  using namespace airlock;
  sandbox::SandboxAgentOptions options;
  try {
    init_logging("sandbox-agent", flags.log_level);
    options.connector = flags.to_options("airlock sandbox create NAME");
    options.config = sandbox::load_sandbox_config(config_path);
    options.connector.hello.name = "";  // the sandbox the token was minted for
    options.image_store = image_store;
    options.metrics_addr = flags.metrics_addr;
    if (const char* t = std::getenv("TMPDIR"); t && *t) options.runtime_dir = t;
    // Secrets are read before anything else runs and stay in this process (and the sandboxes
    // whose credentials name them) only.
    options.secrets = std::make_shared<secrets::SecretStore>(options.config.secrets);
    options.secrets->load();
    set_log_redaction([store = options.secrets] {
      auto set = store->current();
      return set ? set->patterns : nullptr;
    });
  } catch (const std::exception& e) {
    std::cerr << "sandbox-agent: " << e.what() << "\n";
    return 2;
  }
  // Each session's sandbox is cloned from its own watcher thread, and the clone allocates before
  // it execs. glibc's malloc gives threads their own arena only up to M_ARENA_MAX (8 per core
  // by default); a clone made while another thread sharing its arena held the arena's lock
  // would wait forever. Room for every thread of every session (watcher and egress proxy).
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

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  // Holds secrets: no core dumps, no ptrace or /proc/PID/mem from other processes of the user.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  using namespace airlock;
  CLI::App app{"sandbox-agent — runs tool commands isolated: namespaces, a read-only root, cgroup "
               "limits, seccomp, egress only to allowed_outbound through its proxy, credentials "
               "as environment variables, output redacted"};
  app.require_subcommand(1);
  sandbox::RunCommandOptions run_options;
  std::string log_level = "info";
  auto* run = app.add_subcommand(
      "run", "run one command in a sandbox and exit with its status (124: wall-time limit, "
             "125: sandbox set-up failed, 126/127: command not executable/not found)");
  run->add_option("--config", run_options.config_path, "sandbox.yaml")
      ->required()->check(CLI::ExistingFile);
  run->add_option("--workspace", run_options.workspace,
                  "directory bound read-write at /workspace (default: an empty private one)");
  run->add_option("--report", run_options.report_path,
                  "write a JSON summary of the run (exit code, limits hit, usage) to this file");
  run->add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  run_options.image_store = sandbox::kDefaultImageStore;
  run->add_option("--image-store", run_options.image_store,
                  "where layered images are unpacked and image references are looked up")
      ->capture_default_str();
  run->add_option("command", run_options.argv, "the command and its arguments, after '--'")
      ->required();
  auto* start = app.add_subcommand(
      "start", "connect to airlockd and serve the agent toolset (bash, read, write, edit, glob, "
               "grep, web_fetch, custom tools) through /mcp, one sandbox per agent session, "
               "until SIGTERM");
  ConnectorFlags flags;
  flags.add_to(*start);
  std::string start_config, start_store = sandbox::kDefaultImageStore;
  start->add_option("--config", start_config, "sandbox.yaml")->required()->check(CLI::ExistingFile);
  start->add_option("--image-store", start_store,
                    "where layered images are unpacked and image references are looked up")
      ->capture_default_str();
  auto* image = app.add_subcommand("image", "the local image store (no registry pulls)");
  image->require_subcommand(1);
  std::string source, tag;
  auto* import = image->add_subcommand(
      "import", "unpack an OCI layout directory, an OCI archive or a `docker save` tarball into "
                "the store and tag it (then `image: TAG` in sandbox.yaml)");
  import->add_option("source", source, "the directory or tarball")->required();
  import->add_option("--tag", tag, "reference to record, e.g. my-registry/tool-executor:latest")
      ->required();
  auto* list = image->add_subcommand("list", "tags and digests in the store");
  std::string store = sandbox::kDefaultImageStore;
  for (auto* sub : {import, list}) {
    sub->add_option("--image-store", store, "the image store directory")->capture_default_str();
  }
  app.set_version_flag("--version", std::string("sandbox-agent ") + AIRLOCK_VERSION);
  CLI11_PARSE(app, argc, argv);
  if (*start) return start_agent(flags, start_config, start_store);
  try {
    init_logging("sandbox-agent", log_level);
  } catch (const std::exception& e) {
    std::cerr << "sandbox-agent: " << e.what() << "\n";
    return 2;
  }
  if (*import) return sandbox::image_import_command(source, tag, store);
  if (*list) return sandbox::image_list_command(store);
  return sandbox::run_command(run_options);
}
