// sandbox-agent: runs tool commands inside the customer network, isolated per sandbox.yaml.
// Flags only; the work is in src/sandbox/.
#include <sys/prctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <vector>
#include <iostream>

#include "common/log.h"
#include "sandbox/agent_run.h"
#include "sandbox/image.h"

namespace {

// `sandbox-agent start` is the connected agent, a program of its own next to this one: it
// links TLS (OpenSSL) and the connector, which `run` — started once per sandboxed command —
// should not load. Its flags and help are its own. It also serves a `run` whose sandbox.yaml
// has http_credentials (their proxy terminates TLS), with the same flags as here.
int exec_connected(int argc, char** argv) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string helper = (self.parent_path() / "sandbox-agent-connected").string();
  std::vector<char*> args(argv, argv + argc);
  args.push_back(nullptr);
  ::execv(helper.c_str(), args.data());
  std::cerr << "sandbox-agent: cannot start " << helper << " (" << std::strerror(errno)
            << "): install sandbox-agent-connected next to sandbox-agent\n";
  return 2;
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
  sandbox::add_run_command(app, run_options, log_level);
  // Parsed by sandbox-agent-connected: everything after `start` is passed on as it is.
  auto* start = app.add_subcommand(
      "start", "connect to airlockd and serve the agent toolset (bash, read, write, edit, glob, "
               "grep, web_fetch, custom tools) through /mcp, one sandbox per agent session, "
               "until SIGTERM ('sandbox-agent start --help' for its flags)");
  start->prefix_command();
  start->set_help_flag();
  // Parsed by sandbox-agent-connected as well.
  auto* worker = app.add_subcommand(
      "worker",
      "serve a Claude Managed Agents self-hosted environment: poll its work queue and "
      "run each session's tool calls in a sandbox of its own ('sandbox-agent worker "
      "--help' for its flags)");
  worker->prefix_command();
  worker->set_help_flag();
  std::string check_path;
  auto* check = app.add_subcommand(
      "check", "check sandbox.yaml as run and start would (keys, quantities, allowlist, "
               "credentials, custom tools) without reading a secret or building a sandbox");
  check->add_option("--config", check_path, "sandbox.yaml")->required()->check(CLI::ExistingFile);
  auto* image = app.add_subcommand("image", "the local image store: pull, import, list");
  image->require_subcommand(1);
  std::string source, tag;
  auto* import = image->add_subcommand(
      "import", "unpack an OCI layout directory, an OCI archive or a `docker save` tarball into "
                "the store and tag it (then `image: TAG` in sandbox.yaml)");
  import->add_option("source", source, "the directory or tarball")->required();
  import->add_option("--tag", tag, "reference to record, e.g. my-registry/tool-executor:latest")
      ->required();
  auto* list = image->add_subcommand("list", "tags and digests in the store");
  std::string reference, pull_config, platform;
  auto* pull = image->add_subcommand(
      "pull", "pull an image from its registry into the store (what `image: HOST/REPO:TAG` "
              "does on first use) and print its digest");
  pull->add_option("reference", reference, "HOST[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST]")->required();
  pull->add_option("--config", pull_config,
                   "sandbox.yaml whose registries:, platform and image_pull_secret apply")
      ->check(CLI::ExistingFile);
  pull->add_option("--platform", platform, "OS/ARCH[/VARIANT] of a multi-platform image (default linux/amd64)");
  std::string store = sandbox::kDefaultImageStore;
  for (auto* sub : {import, list, pull}) {
    sub->add_option("--image-store", store, "the image store directory")->capture_default_str();
  }
  app.set_version_flag("--version", std::string("sandbox-agent ") + AIRLOCK_VERSION);
  CLI11_PARSE(app, argc, argv);
  if (*start || *worker) return exec_connected(argc, argv);
  try {
    init_logging("sandbox-agent", log_level);
  } catch (const std::exception& e) {
    std::cerr << "sandbox-agent: " << e.what() << "\n";
    return 2;
  }
  if (*check) return sandbox::check_config_command(check_path);
  if (*import) return sandbox::image_import_command(source, tag, store);
  if (*list) return sandbox::image_list_command(store);
  if (*pull) return sandbox::image_pull_command(reference, pull_config, platform, store);
  // A run with host-bound credentials needs TLS: sandbox-agent-connected serves it.
  run_options.hand_over = [argc, argv] { return exec_connected(argc, argv); };
  return sandbox::run_command(run_options);
}
