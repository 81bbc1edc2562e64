// Cgroup: the parent-side handle on one run's control group, which holds the run to its cpu,
// memory and pids limits, counts what it used, and kills it as a whole. cgroup v2 is used when
// the unified hierarchy offers the memory, cpu and pids controllers; otherwise the v1
// hierarchies of those controllers. Owned by the thread that runs the sandbox; not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sandbox/config.h"
#include "sandbox/steps.h"

namespace airlock::sandbox {

// Where this process's cgroups are: each path is the directory of this process's own cgroup in
// that hierarchy (runs are created below it, so an operator's limits on the agent hold for its
// runs too). Empty: not available.
struct CgroupRoots {
  std::string v2;  // unified hierarchy, only when it offers memory, cpu and pids
  std::string v1_memory, v1_cpu, v1_pids;
  // Read from /proc/self/mountinfo and /proc/self/cgroup (paths overridable for tests).
  static CgroupRoots detect(const std::string& mountinfo = "/proc/self/mountinfo",
                            const std::string& self_cgroup = "/proc/self/cgroup");
  bool usable() const { return !v2.empty() || (!v1_memory.empty() && !v1_cpu.empty() && !v1_pids.empty()); }
  // Why neither version can be used, for the error message.
  std::string why_unusable;
};

struct CgroupUsage {
  uint64_t oom_kills = 0;         // processes the kernel killed for the memory limit
  uint64_t pids_refused = 0;      // forks refused for the pids limit
  uint64_t cpu_throttled = 0;     // periods in which the run was throttled for the cpu limit
  uint64_t memory_peak = 0;       // bytes (0 when the kernel does not say)
};

class Cgroup {
 public:
  enum class Version { kV1, kV2 };
  // Creates the run's cgroup(s) and writes its limits. nullptr with `status` set when that
  // fails (the status names the file and errno).
  static std::unique_ptr<Cgroup> create(const CgroupRoots& roots, const std::string& run_id,
                                        const Resources& limits, Status& status);
  // Kills everything left in the group and removes it.
  ~Cgroup();
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  Version version() const { return version_; }
  // "cgroup v1 (memory, cpu, pids)" and the directories, for the log.
  std::string describe() const;
  // Moves `pid` (its whole thread group) into the run's cgroup(s).
  Status add(pid_t pid);
  // v2: the run's directory opened for clone_into_cgroup (the caller closes it); -1 for v1,
  // whose hierarchies a process can only be moved into.
  int open_directory() const;
  // SIGKILL to every process in the group (v2: cgroup.kill, else one by one until empty).
  void kill_all();
  CgroupUsage usage() const;
  const std::vector<std::string>& directories() const { return dirs_; }

 private:
  Cgroup() = default;
  Version version_ = Version::kV1;
  std::vector<std::string> dirs_;  // v2: one; v1: memory, cpu, pids
};

// clone(2) with `flags` (namespaces | exit signal). When `cgroup_dir` is a cgroup v2 directory
// (Cgroup::open_directory) the child starts in it — clone3 with CLONE_INTO_CGROUP, Linux 5.7 —
// so that nothing is migrated afterwards, and `placed` is set; on a kernel (or seccomp policy)
// without clone3 it falls back to clone(2) and the caller moves the child with Cgroup::add.
// Returns as fork(2) does: the child's pid in the parent, 0 in the child, -1 with errno.
long clone_into_cgroup(unsigned long flags, int cgroup_dir, bool& placed);

}  // namespace airlock::sandbox
