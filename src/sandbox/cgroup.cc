// Control groups, parent side (and the child's cgroup namespace). See cgroup.h.
#include "sandbox/cgroup.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

namespace airlock::sandbox {
namespace {

constexpr uint64_t kCpuPeriodUs = 100'000;

// Cgroup control files (O_CREAT: a test's plain directory tree needs it; cgroupfs ignores it).
Status write_control(const std::string& path, const std::string& value) {
  return write_file(path, value, O_WRONLY | O_CREAT | O_TRUNC);
}

// "key value" lines (memory.events, pids.events, cpu.stat, memory.oom_control).
uint64_t keyed_value(const std::string& path, const std::string& key) {
  std::string text;
  if (!read_file(path, text)) return 0;
  std::istringstream in(text);
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

uint64_t single_value(const std::string& path) {
  std::string text;
  if (!read_file(path, text)) return 0;
  try {
    return std::stoull(text);
  } catch (...) {
    return 0;
  }
}

bool has_words(const std::string& text, std::initializer_list<const char*> words) {
  std::istringstream in(text);
  std::vector<std::string> have;
  for (std::string w; in >> w;) have.push_back(w);
  for (const char* w : words) {
    if (std::find(have.begin(), have.end(), w) == have.end()) return false;
  }
  return true;
}

Status make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return Status::Sys("mkdir", path, errno);
  return Status::Ok();
}

}  // namespace

CgroupRoots CgroupRoots::detect(const std::string& mountinfo, const std::string& self_cgroup) {
  CgroupRoots r;
  // This process's cgroup path per hierarchy: "ID:controllers:/path"; v2 has ID 0 and "".
  std::map<std::string, std::string> own;  // controller (or "" for v2) -> path
  {
    std::ifstream in(self_cgroup);
    for (std::string line; std::getline(in, line);) {
      const size_t a = line.find(':'), b = line.find(':', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
      if (controllers.empty()) {
        own[""] = path;
        continue;
      }
      std::istringstream cs(controllers);
      for (std::string c; std::getline(cs, c, ',');) own[c] = path;
    }
  }
  std::ifstream in(mountinfo);
  for (std::string line; std::getline(in, line);) {
    // "... mount_point options - fstype source super_options"
    std::istringstream ls(line);
    std::vector<std::string> f;
    for (std::string w; ls >> w;) f.push_back(w);
    const auto dash = std::find(f.begin(), f.end(), "-");
    if (dash == f.end() || dash + 3 > f.end() || f.size() < 5) continue;
    const std::string& mount_point = f[4];
    const std::string& fstype = *(dash + 1);
    const std::string& super = *(dash + 3);
    const std::string& root = f[3];  // the mount's root within its hierarchy
    auto below = [&](const std::string& path) {
      // The cgroup path as seen through this mount.
      if (root == "/" ) return mount_point + (path == "/" ? "" : path);
      if (path.rfind(root, 0) == 0) return mount_point + path.substr(root.size());
      return std::string();
    };
    if (fstype == "cgroup2" && own.count("")) {
      const std::string dir = below(own[""]);
      std::string controllers;
      if (!dir.empty() && read_file(dir + "/cgroup.controllers", controllers) &&
          has_words(controllers, {"memory", "cpu", "pids"})) {
        r.v2 = dir;
      }
    } else if (fstype == "cgroup") {
      std::istringstream os(super);
      for (std::string opt; std::getline(os, opt, ',');) {
        if (!own.count(opt)) continue;
        std::string* slot = opt == "memory" ? &r.v1_memory : opt == "cpu" ? &r.v1_cpu
                            : opt == "pids" ? &r.v1_pids : nullptr;
        if (slot && slot->empty()) *slot = below(own[opt]);
      }
    }
  }
  if (!r.v2.empty()) {
    r.v1_memory.clear(), r.v1_cpu.clear(), r.v1_pids.clear();
  } else if (!r.usable()) {
    r.why_unusable = "no cgroup hierarchy offers the memory, cpu and pids controllers (cgroup v2 "
                     "without them delegated, and v1 ";
    r.why_unusable += r.v1_memory.empty() ? "memory " : "";
    r.why_unusable += r.v1_cpu.empty() ? "cpu " : "";
    r.why_unusable += r.v1_pids.empty() ? "pids " : "";
    r.why_unusable += "missing)";
  }
  return r;
}

std::unique_ptr<Cgroup> Cgroup::create(const CgroupRoots& roots, const std::string& run_id,
                                       const Resources& limits, Status& status) {
  if (!roots.usable()) {
    status = Status::Error(roots.why_unusable);
    return nullptr;
  }
  std::unique_ptr<Cgroup> cg(new Cgroup());
  if (!roots.v2.empty()) {
    cg->version_ = Version::kV2;
    // Controllers must be enabled for children in the parent, which then may hold no process
    // itself ("no internal processes"): if enabling fails for that reason, this process moves
    // into a leaf of its own first.
    const std::string want = "+memory +cpu +pids";
    std::string enabled;
    read_file(roots.v2 + "/cgroup.subtree_control", enabled);
    if (!has_words(enabled, {"memory", "cpu", "pids"})) {
      Status s = write_control(roots.v2 + "/cgroup.subtree_control", want);
      if (!s.ok()) {
        const std::string leaf = roots.v2 + "/sandbox-agent";
        if (auto m = make_dir(leaf); !m.ok()) return status = m, nullptr;
        if (auto m = write_control(leaf + "/cgroup.procs", std::to_string(::getpid())); !m.ok()) {
          return status = m, nullptr;
        }
        s = write_control(roots.v2 + "/cgroup.subtree_control", want);
        if (!s.ok()) {
          status = Status::Error(
              s.error + "; the memory, cpu and pids controllers cannot be enabled below " +
              roots.v2 + " — when other processes share sandbox-agent's cgroup (a login " +
              "session, say), start it in a cgroup of its own, e.g. systemd-run --scope -p " +
              "Delegate=yes sandbox-agent run …");
          return nullptr;
        }
      }
    }
    const std::string dir = roots.v2 + "/" + run_id;
    if (auto s = make_dir(dir); !s.ok()) return status = s, nullptr;
    cg->dirs_.push_back(dir);
    const std::pair<std::string, std::string> files[] = {
        {"memory.max", limits.memory_bytes ? std::to_string(limits.memory_bytes) : "max"},
        {"memory.swap.max", limits.memory_bytes ? "0" : "max"},
        {"cpu.max", limits.cpu_millis
                        ? std::to_string(limits.cpu_millis * kCpuPeriodUs / 1000) + " " +
                              std::to_string(kCpuPeriodUs)
                        : "max " + std::to_string(kCpuPeriodUs)},
        {"pids.max", std::to_string(limits.pids)},
    };
    for (const auto& [file, value] : files) {
      if (auto s = write_control(dir + "/" + file, value); !s.ok()) return status = s, nullptr;
    }
    return cg;
  }
  cg->version_ = Version::kV1;
  for (const std::string* base : {&roots.v1_memory, &roots.v1_cpu, &roots.v1_pids}) {
    const std::string dir = *base + "/" + run_id;
    if (auto s = make_dir(dir); !s.ok()) return status = s, nullptr;
    cg->dirs_.push_back(dir);
  }
  const std::string& mem = cg->dirs_[0];
  const std::string& cpu = cg->dirs_[1];
  const std::string& pids = cg->dirs_[2];
  if (limits.memory_bytes) {
    if (auto s = write_control(mem + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes));
        !s.ok()) {
      return status = s, nullptr;
    }
    // No swap either, where the kernel accounts it (memsw must not be below the limit).
    struct stat st {};
    if (::stat((mem + "/memory.memsw.limit_in_bytes").c_str(), &st) == 0) {
      if (auto s = write_control(mem + "/memory.memsw.limit_in_bytes",
                              std::to_string(limits.memory_bytes));
          !s.ok()) {
        return status = s, nullptr;
      }
    }
    if (::stat((mem + "/memory.swappiness").c_str(), &st) == 0) {
      write_control(mem + "/memory.swappiness", "0");  // best effort: not every kernel allows it
    }
  }
  if (limits.cpu_millis) {
    if (auto s = write_control(cpu + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs)); !s.ok()) {
      return status = s, nullptr;
    }
    if (auto s = write_control(cpu + "/cpu.cfs_quota_us",
                            std::to_string(limits.cpu_millis * kCpuPeriodUs / 1000));
        !s.ok()) {
      return status = s, nullptr;
    }
  }
  if (auto s = write_control(pids + "/pids.max", std::to_string(limits.pids)); !s.ok()) {
    return status = s, nullptr;
  }
  return cg;
}

Cgroup::~Cgroup() {
  // After a run's init has exited its processes are gone and the directories go at once; if
  // not, every process left is killed first.
  bool killed = false;
  for (const auto& dir : dirs_) {
    // A cgroup can be removed once its last process is reaped, which can lag the kill a bit.
    for (int i = 0; i < 200; ++i) {
      if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) break;
      if (errno != EBUSY) break;
      if (!killed) {
        kill_all();
        killed = true;
        continue;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

std::string Cgroup::describe() const {
  std::string out = version_ == Version::kV2 ? "cgroup v2" : "cgroup v1 (memory, cpu, pids)";
  for (const auto& d : dirs_) out += " " + d;
  return out;
}

Status Cgroup::add(pid_t pid) {
  for (const auto& dir : dirs_) {
    if (auto s = write_control(dir + "/cgroup.procs", std::to_string(pid)); !s.ok()) return s;
  }
  return Status::Ok();
}

int Cgroup::open_directory() const {
  if (version_ != Version::kV2 || dirs_.empty()) return -1;
  return ::open(dirs_[0].c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

long clone_into_cgroup(unsigned long flags, int cgroup_dir, bool& placed) {
  placed = false;
  if (cgroup_dir >= 0) {
    clone_args args{};
    args.flags = (flags & ~static_cast<unsigned long>(CSIGNAL)) | CLONE_INTO_CGROUP;
    args.exit_signal = flags & CSIGNAL;
    args.cgroup = static_cast<uint64_t>(cgroup_dir);
    const long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid >= 0) {
      placed = true;
      return pid;
    }
    // ENOSYS: no clone3 (or a seccomp policy that hides it); E2BIG/EINVAL: a clone3 that
    // predates CLONE_INTO_CGROUP. Anything else is the clone's own failure.
    if (errno != ENOSYS && errno != E2BIG && errno != EINVAL) return -1;
  }
  return ::syscall(SYS_clone, flags, nullptr, nullptr, nullptr, 0);
}

void Cgroup::kill_all() {
  if (dirs_.empty()) return;
  if (version_ == Version::kV2) {
    struct stat st {};
    if (::stat((dirs_[0] + "/cgroup.kill").c_str(), &st) == 0) {
      write_control(dirs_[0] + "/cgroup.kill", "1");
      return;
    }
  }
  // Without cgroup.kill: signal what is listed until nothing is (new forks are bounded by
  // pids.max and stopped by each round).
  for (int round = 0; round < 100; ++round) {
    std::string procs;
    bool any = false;
    for (const auto& dir : dirs_) {
      if (!read_file(dir + "/cgroup.procs", procs)) continue;
      std::istringstream in(procs);
      for (pid_t pid; in >> pid;) {
        any = true;
        ::kill(pid, SIGKILL);
      }
    }
    if (!any) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

CgroupUsage Cgroup::usage() const {
  CgroupUsage u;
  if (dirs_.empty()) return u;
  if (version_ == Version::kV2) {
    const std::string& d = dirs_[0];
    u.oom_kills = keyed_value(d + "/memory.events", "oom_kill");
    u.pids_refused = keyed_value(d + "/pids.events", "max");
    u.cpu_throttled = keyed_value(d + "/cpu.stat", "nr_throttled");
    u.memory_peak = single_value(d + "/memory.peak");
    return u;
  }
  u.oom_kills = keyed_value(dirs_[0] + "/memory.oom_control", "oom_kill");
  if (!u.oom_kills && single_value(dirs_[0] + "/memory.failcnt") &&
      keyed_value(dirs_[0] + "/memory.oom_control", "under_oom")) {
    u.oom_kills = 1;
  }
  u.memory_peak = single_value(dirs_[0] + "/memory.max_usage_in_bytes");
  u.cpu_throttled = keyed_value(dirs_[1] + "/cpu.stat", "nr_throttled");
  u.pids_refused = keyed_value(dirs_[2] + "/pids.events", "max");
  return u;
}

Status enter_cgroup_namespace() {
  if (::unshare(CLONE_NEWCGROUP) != 0) return Status::Sys("unshare", "CLONE_NEWCGROUP", errno);
  return Status::Ok();
}

}  // namespace airlock::sandbox
