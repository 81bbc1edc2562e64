#include "sandbox/agent_run.h"

#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>

#include "common/config_util.h"
#include "common/log.h"
#include "common/secrets.h"
#include "sandbox/egress_proxy.h"
#include "sandbox/image.h"
#include "sandbox/sandbox.h"
#include "sandbox/tool_env.h"

namespace airlock::sandbox {
namespace {

void write_out(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // our reader went away: the run goes on, its output is lost
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

std::string unique_run_id(const std::string& name) {
  static std::atomic<unsigned> counter{0};
  return "airlock-" + name + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1));
}

void write_report(const std::string& path, const RunResult& r, const EgressStats& egress) {
  boost::json::object o;
  o["exit_code"] = r.exit_code;
  o["error"] = r.error;
  o["limit"] = r.limit;
  o["setup_failed"] = r.setup_failed;
  o["cgroup"] = r.cgroup;
  o["elapsed_ms"] = r.elapsed.count();
  o["oom_kills"] = r.usage.oom_kills;
  o["pids_refused"] = r.usage.pids_refused;
  o["cpu_throttled"] = r.usage.cpu_throttled;
  o["memory_peak"] = r.usage.memory_peak;
  o["stdout_bytes"] = r.output_bytes[1];
  o["stderr_bytes"] = r.output_bytes[2];
  o["stdout_truncated"] = r.truncated[1];
  o["stderr_truncated"] = r.truncated[2];
  boost::json::object red;
  for (const auto& [name, n] : r.redacted) red[name] = n;
  o["redacted"] = std::move(red);
  o["egress_allowed"] = egress.allowed;
  o["egress_denied"] = egress.denied;
  std::ofstream(path) << boost::json::serialize(o) << "\n";
}

}  // namespace

int run_command(const RunCommandOptions& options) {
  SandboxConfig config;
  std::shared_ptr<secrets::SecretStore> store;
  RunSpec spec;
  try {
    config = load_sandbox_config(options.config_path);
    if (!config.http_credentials.empty() && !options.credential_injector && options.hand_over) {
      return options.hand_over();
    }
    store = secrets::open_secret_store(config.secrets, /*report=*/false);
    if (options.argv.empty()) throw ConfigError("no command: give it after '--'");
    if (!options.workspace.empty()) {
      struct stat st {};
      char real[PATH_MAX];
      if (::stat(options.workspace.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
          !::realpath(options.workspace.c_str(), real)) {
        throw ConfigError("--workspace '" + options.workspace + "' is not a directory");
      }
      spec.root.workspace = real;
    }
  } catch (const std::exception& e) {
    std::cerr << "sandbox-agent: " << e.what() << "\n";
    return 2;
  }
  std::string error;
  std::optional<ImageRoot> image;
  try {
    image = resolve_image(config.image, options.image_store,
                          pull_options_for(config, store->current().get()), error);
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!image) {
    std::cerr << "sandbox-agent: " << error << "\n";
    return 2;
  }
  spec.name = config.name;
  spec.root.host = image->host;
  spec.root.image_dir = image->dir;
  spec.root.tmp_size = config.resources.tmp_size;
  spec.limits = config.resources;
  spec.argv = options.argv;
  spec.run_id = unique_run_id(config.name);
  if (const char* t = std::getenv("TMPDIR"); t && *t) spec.runtime_dir = t;

  auto set = store->current();
  std::unique_ptr<EgressProxy> proxy;
  if (!prepare_sandbox(config, set, options.credential_injector, spec, proxy, error)) {
    std::cerr << "sandbox-agent: " << error << "\n";
    return 2;
  }
  spec.redaction = set ? set->patterns : nullptr;
  spec.output = [](int stream, std::string_view bytes) { write_out(stream, bytes); };

  // Egress: only through the proxy, and only when something is allowed; otherwise the run's
  // network namespace has nothing but its loopback.
  if (proxy) {
    spec.proxy_port = kProxyPort;
    spec.on_proxy_socket = [&proxy](int fd) { proxy->start(fd); };
  }
  const CgroupRoots roots = CgroupRoots::detect();
  spec.during_setup = [&roots, dir = spec.runtime_dir] {
    if (size_t n = remove_leftovers(roots, dir)) {
      spdlog::info("removed {} leftover(s) of sandbox runs whose agent is gone", n);
    }
  };
  // SIGINT/SIGTERM stop the run (forwarded to the tool, then killed after a grace period).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  spec.stop_fd = ::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);

  spdlog::debug("run {}: image {}, limits cpu={} memory={} pids={} wall_time={}ms", spec.run_id,
                image->description,
                config.resources.cpu_millis ? format_cpu(config.resources.cpu_millis) : "none",
                config.resources.memory_bytes ? format_bytes(config.resources.memory_bytes) : "none",
                config.resources.pids, config.resources.wall_time.count());
  RunResult result = run_sandboxed(spec, roots);
  EgressStats egress;
  if (proxy) {
    proxy->stop();
    egress = proxy->stats();
  }
  // Values copied into the tool's environment are not needed any more.
  wipe(spec.env);
  if (spec.stop_fd >= 0) ::close(spec.stop_fd);
  if (!result.cgroup.empty()) spdlog::debug("run {}: limits enforced by {}", spec.run_id, result.cgroup);
  for (const auto& [name, n] : result.redacted) {
    spdlog::warn("run {}: secret '{}' redacted from the output {} time(s)", spec.run_id, name, n);
  }
  if (!result.error.empty()) {
    if (result.setup_failed) {
      spdlog::error("run {}: sandbox set-up failed: {}", spec.run_id, result.error);
    } else {
      spdlog::error("run {}: {}", spec.run_id, result.error);
    }
  }
  if (!options.report_path.empty()) write_report(options.report_path, result, egress);
  return result.exit_code;
}

CLI::App* add_run_command(CLI::App& app, RunCommandOptions& options, std::string& log_level) {
  auto* run = app.add_subcommand(
      "run", "run one command in a sandbox and exit with its status (124: wall-time limit, "
             "125: sandbox set-up failed, 126/127: command not executable/not found)");
  run->add_option("--config", options.config_path, "sandbox.yaml")
      ->required()->check(CLI::ExistingFile);
  run->add_option("--workspace", options.workspace,
                  "directory bound read-write at /workspace (default: an empty private one)");
  run->add_option("--report", options.report_path,
                  "write a JSON summary of the run (exit code, limits hit, usage) to this file");
  run->add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  options.image_store = kDefaultImageStore;
  run->add_option("--image-store", options.image_store,
                  "where layered images are unpacked and image references are looked up")
      ->capture_default_str();
  run->add_option("command", options.argv, "the command and its arguments, after '--'")
      ->required();
  return run;
}

ImagePullOptions pull_options_for(const SandboxConfig& config, const secrets::SecretSet* set) {
  ImagePullOptions o;
  o.policy = config.pull;
  o.platform = config.platform;
  o.registries = config.registries;
  if (!config.image_pull_secret.empty()) {
    const secrets::SecretValue* v = set ? set->find(config.image_pull_secret) : nullptr;
    if (!v) {
      throw ConfigError("sandbox.image_pull_secret '" + config.image_pull_secret +
                        "' is not loaded (no secrets: source provides it)");
    }
    o.docker_config = std::string(v->view());
    // Checked here, so that a malformed document is an error of the config, not of each pull.
    std::string ignored;
    if (auto ref = parse_image_reference(config.image, ignored)) {
      (void)credentials_for(o.docker_config, ref->registry);
    }
  }
  return o;
}

int image_pull_command(const std::string& reference, const std::string& config_path,
                       const std::string& platform, const std::string& store) {
  ImagePullOptions pull;
  try {
    if (!config_path.empty()) {
      const SandboxConfig config = load_sandbox_config(config_path);
      auto secrets = secrets::open_secret_store(config.secrets, /*report=*/false);
      pull = pull_options_for(config, secrets->current().get());
    }
  } catch (const std::exception& e) {
    std::cerr << "sandbox-agent: " << e.what() << "\n";
    return 2;
  }
  if (!platform.empty()) pull.platform = platform;
  std::string error;
  auto digest = pull_to_store(reference, store, pull, error);
  if (!digest) {
    std::cerr << "sandbox-agent: " << error << "\n";
    return 1;
  }
  std::string ignored;
  std::cout << parse_image_reference(reference, ignored)->str() << " " << *digest << "\n";
  return 0;
}

int image_import_command(const std::string& source, const std::string& tag,
                         const std::string& store) {
  std::string error;
  auto digest = import_image(source, tag, store, error);
  if (!digest) {
    std::cerr << "sandbox-agent: " << error << "\n";
    return 1;
  }
  std::cout << normalize_reference(tag) << " " << *digest << "\n";
  return 0;
}

int image_list_command(const std::string& store) {
  for (const auto& i : list_images(store)) std::cout << i.tag << " " << i.digest << "\n";
  return 0;
}

int check_config_command(const std::string& path) {
  SandboxConfig c;
  try {
    c = load_sandbox_config(path);
  } catch (const std::exception& e) {
    std::cerr << "sandbox-agent: " << e.what() << "\n";
    return 2;
  }
  const Resources& r = c.resources;
  std::cout << path << ": ok — sandbox '" << c.name << "', image " << c.image << ", cpu "
            << (r.cpu_millis ? format_cpu(r.cpu_millis) : "unlimited") << ", memory "
            << (r.memory_bytes ? format_bytes(r.memory_bytes) : "unlimited") << ", pids "
            << r.pids << ", max_sessions " << c.max_sessions << ", warm pool " << c.warm_pool
            << "\n";
  std::string allowed;
  for (const auto& a : c.allowed_outbound) allowed += (allowed.empty() ? "" : ", ") + a;
  std::cout << "  allowed outbound: " << (allowed.empty() ? "none" : allowed) << "\n";
  for (const auto& cred : c.credentials) {
    // The config loader made sure a `secrets:` entry names it, or a dir: source may hold it.
    std::string from;
    for (const auto& s : c.secrets) {
      if (s.name == cred.secret) from = s.from;
    }
    if (from.empty()) {
      for (const auto& s : c.secrets) {
        if (s.name.empty()) from += (from.empty() ? "" : " or ") + s.from;
      }
    }
    std::cout << "  credential " << cred.env_var << " <- secret '" << cred.secret << "' from "
              << from << " (not read by check)\n";
  }
  for (const auto& t : c.custom_tools) std::cout << "  custom tool " << t.name << "\n";
  return 0;
}

}  // namespace airlock::sandbox
