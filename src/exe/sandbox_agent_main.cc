// sandbox-agent: runs tool commands inside the customer network, isolated per sandbox.yaml.
// Flags only; the work is in src/sandbox/.
#include <sys/prctl.h>

#include <CLI/CLI.hpp>

#include <csignal>
#include <iostream>

#include "common/log.h"
#include "sandbox/agent_run.h"

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
  run->add_option("command", run_options.argv, "the command and its arguments, after '--'")
      ->required();
  app.set_version_flag("--version", std::string("sandbox-agent ") + AIRLOCK_VERSION);
  CLI11_PARSE(app, argc, argv);
  try {
    init_logging("sandbox-agent", log_level);
  } catch (const std::exception& e) {
    std::cerr << "sandbox-agent: " << e.what() << "\n";
    return 2;
  }
  return sandbox::run_command(run_options);
}
