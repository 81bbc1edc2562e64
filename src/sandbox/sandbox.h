// run_sandboxed: runs one command isolated — its own user, mount, PID, network, IPC, UTS and
// cgroup namespaces, a read-only root from an image, no capabilities, no_new_privs, a seccomp
// deny list — held to cpu, memory, pids, wall-time and output limits, with its output redacted.
// Used by `sandbox-agent run` and by the connected agent. Blocking: call it from a thread that
// may wait for the whole run. The calling process must be single-threaded or call it from a
// thread that owns no lock another thread could hold at fork (the child allocates).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/redactor.h"
#include "sandbox/cgroup.h"
#include "sandbox/config.h"
#include "sandbox/steps.h"

namespace airlock::sandbox {

// Exit codes of a run that did not end by the tool's own exit (else the tool's code, or
// 128 + signal when it was killed), like timeout(1) and container runtimes.
inline constexpr int kExitWallTime = 124;
inline constexpr int kExitSetupFailed = 125;
inline constexpr int kExitNotExecutable = 126;
inline constexpr int kExitNotFound = 127;

struct RunSpec {
  std::string name = "sandbox";  // hostname inside
  RootPlan root;  // `staging` and `cache_dir` are filled in by run_sandboxed
  Resources limits;
  std::vector<std::string> argv;  // argv[0] is looked up in the tool's PATH
  std::vector<std::string> env;   // "NAME=value": the tool's whole environment
  // The tool's standard input (the connected agent's channel to its toolbox); -1: /dev/null.
  // The caller keeps and closes its own descriptor.
  int stdin_fd = -1;
  // Applied to stdout and stderr (null: nothing to redact).
  std::shared_ptr<const redact::Patterns> redaction;
  // Receives the tool's output after the cap and redaction: stream 1 or 2.
  std::function<void(int stream, std::string_view bytes)> output;
  // Egress: when set, a listening socket on 127.0.0.1:proxy_port inside the run's network
  // namespace is created and handed over (the callee owns the descriptor) before the tool
  // starts.
  uint16_t proxy_port = 0;
  std::function<void(int listen_fd)> on_proxy_socket;
  // Readable when the run should stop (e.g. a signalfd for SIGINT/SIGTERM): the tool gets
  // SIGTERM, and is killed `stop_grace` later if still running. -1: none.
  int stop_fd = -1;
  std::chrono::milliseconds stop_grace{5000};
  // Housekeeping the agent does while the run's child builds its root (it would otherwise
  // wait), e.g. removing what runs of a killed agent left behind.
  std::function<void()> during_setup;
  // Where the agent keeps airlock-sandbox-UID (made once and kept): the new root's mount point
  // and, for image "host", the copies of the /etc allow-list.
  std::string runtime_dir = "/tmp";
  std::string run_id;                // cgroup name; unique per run
  // When set (a path to sandbox-agent-init), the run's init, once the tool has started, drops
  // every capability and execs this program to go on as init: nothing of the agent's memory
  // (which holds secrets the sandbox must never see, e.g. host-bound credentials) stays in
  // the sandbox. Empty: the cloned init goes on as it is — a copy of the agent, which the tool
  // cannot read (not dumpable) but which a scan from outside would find.
  std::string clean_init;
};

// sandbox-agent-init next to the running executable, or empty with `error` when it is not
// there.
std::string clean_init_beside_self(std::string& error);

struct RunResult {
  int exit_code = 0;
  // Empty when the tool ran and ended on its own within its limits; else what happened, e.g.
  // "memory limit of 64Mi exceeded: the kernel killed 1 process".
  std::string error;
  // The limit that ended or hindered the run: "memory", "wall_time", "pids", "output" or "".
  std::string limit;
  bool setup_failed = false;
  CgroupUsage usage;
  std::string cgroup;  // which version and where, for the log
  std::chrono::milliseconds elapsed{0};
  uint64_t output_bytes[3] = {0, 0, 0};  // per stream as produced, before the cap
  bool truncated[3] = {false, false, false};
  std::map<std::string, uint64_t> redacted;  // secret name -> occurrences replaced
};

RunResult run_sandboxed(const RunSpec& spec, const CgroupRoots& cgroups);

// The agent's directory for the runs of this (effective) user: `runtime_dir`/airlock-sandbox-UID.
std::string sandbox_dir(const std::string& runtime_dir);

// Removes what runs of agents that are gone left behind (killed with SIGKILL, say): their
// cgroups ("airlock-NAME-PID-N", processes killed first; only those whose PID is no longer
// alive, so runs of other live agents are safe), and /etc copies whose build they abandoned in
// sandbox_dir(`runtime_dir`) (a minute after last written). Returns how many were removed.
size_t remove_leftovers(const CgroupRoots& cgroups, const std::string& runtime_dir);

}  // namespace airlock::sandbox
