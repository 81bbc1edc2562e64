// The sandbox's kernel-facing steps, one file per kernel concern (user.cc, mount.cc, pid.cc,
// net.cc, ipc.cc, uts.cc, cgroup.cc, seccomp.cc, caps.cc, rlimit.cc). containment.cc calls
// them in one ordered list; the order is the security argument and is explained there.
//
// Child-side steps run in the cloned child, which is single-threaded and about to exec: they
// allocate freely but never log (the parent logs what they return). Every failure names the
// syscall, its arguments and errno.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::sandbox {

struct Resources;

// A step's outcome: empty when it worked.
struct Status {
  std::string error;
  bool ok() const { return error.empty(); }
  static Status Ok() { return {}; }
  // "mount(tmpfs, /x, MS_NOSUID): Operation not permitted (errno 1)"
  static Status Sys(std::string_view call, std::string_view args, int err);
  static Status Error(std::string message) { return {std::move(message)}; }
};

// Writes `content` to a control file with one write(2). `flags`: O_WRONLY for /proc files;
// cgroup files are opened O_WRONLY | O_CREAT | O_TRUNC (also what a test's plain tree needs).
Status write_file(const std::string& path, std::string_view content, int flags);
// The whole file; false if it cannot be opened or read.
bool read_file(const std::string& path, std::string& out);
// Reads `fd` to EOF, keeping at most `limit` bytes (the rest is read and dropped, so that the
// writer never blocks); false on a read error or when more than `limit` arrived.
bool read_to_end(int fd, std::string& out, size_t limit);

// --- user.cc: user namespace ------------------------------------------------------------------
// Parent: maps the child's root to `outer_uid`/`outer_gid` (this process's own ids, so a run
// started as root is root-mapped and one started by a user is that user), after denying
// setgroups.
Status write_id_maps(pid_t child, uid_t outer_uid, gid_t outer_gid);
// Child: takes uid/gid 0 inside the namespace (its full capability set there, until caps.cc
// drops it).
Status become_namespace_root();

// --- mount.cc: mount namespace and the root filesystem ----------------------------------------
struct RootPlan {
  std::string staging;    // an empty directory; a tmpfs becomes the new root there
  // Image "host": where the copies of the /etc allow-list are kept — a directory of the
  // agent's user that nobody else may enter.
  std::string cache_dir;
  bool host = false;      // the host's system directories instead of an image
  std::string image_dir;  // an unpacked root filesystem (when !host)
  std::string workspace;  // bound read-write at /workspace; empty: a private tmpfs
  uint64_t workspace_size = 64 * 1024 * 1024;  // bytes for that private tmpfs
  uint64_t tmp_size = 0;  // bytes for /tmp
  // A program bound read-only at /.airlock-toolbox (the connected agent's toolbox); empty: none.
  std::string toolbox;
  // A CA certificate (PEM) the sandbox must trust — its egress proxy's, for host-bound
  // credentials; empty: none. Written to kSandboxCaFile; kSandboxCaBundle gets the root's CA
  // bundle with it appended, and every system CA bundle the root has (Debian, RHEL, SUSE,
  // Alpine paths) is covered by a copy with it appended.
  std::string extra_ca_pem;
};
inline constexpr const char* kSandboxCaFile = "/run/airlock/egress-ca.pem";
inline constexpr const char* kSandboxCaBundle = "/run/airlock/ca-bundle.pem";
// Child: builds the read-only root (image or host directories), /workspace, /tmp, /proc,
// /dev, then pivot_root into it and detaches the old root.
Status build_root(const RootPlan& plan);
// Removes, from `cache_dir`, /etc copies whose build was abandoned (its run was killed) or that
// were set aside as damaged, `min_age` seconds after they were last written; and, when
// `current` names the copy in use (etc-KEY), every other copy `min_age` seconds after it was
// put in place. The agent, which does not know the current key, passes "". Returns how many.
size_t remove_stale_etc_copies(const std::string& cache_dir, const std::string& current,
                               time_t min_age = 60);

// --- pid.cc: PID namespace init ---------------------------------------------------------------
// Child, as PID 1 of the new namespace, after forking the tool: reaps every process, forwards
// SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to the tool, and returns the tool's wait
// status as an exit code (128+signal when it was killed). The kernel kills what is left when
// it returns.
int run_init(pid_t tool);
// Child, before forking the tool: signal handling for an init that forwards, and no ptrace or
// /proc/1/{mem,environ} for the tool.
Status prepare_init();

// --- net.cc: network namespace ----------------------------------------------------------------
// Child: brings up `lo` in the new namespace (which has nothing else).
Status bring_up_loopback();
// Child: a TCP listening socket on 127.0.0.1:`port` inside the namespace, for the egress
// proxy outside it; returns the descriptor or -1 with `status` set.
int listen_on_loopback(uint16_t port, Status& status);

// --- ipc.cc: IPC namespace --------------------------------------------------------------------
// Child: a POSIX message queue filesystem of the new IPC namespace at `dir` (under /dev).
Status mount_mqueue(const std::string& dir);

// --- uts.cc: UTS namespace --------------------------------------------------------------------
Status set_hostname(const std::string& name);

// --- cgroup.cc: child side (the parent side is cgroup.h) ---------------------------------------
// Child, once the parent has placed it in its cgroup: a cgroup namespace rooted there.
Status enter_cgroup_namespace();

// --- caps.cc: capabilities and no_new_privs ---------------------------------------------------
// Tool process: empties the bounding, ambient, inheritable, permitted and effective sets and
// locks securebits so that exec (setuid binaries, file capabilities) gains nothing back.
// `keep`: capabilities (bit N = capability N) to keep in the bounding, permitted and effective
// sets where held now — none for a tool; the image unpacker keeps the few that extracting files
// as root needs.
Status drop_capabilities(uint64_t keep = 0);
Status set_no_new_privs();

// --- rlimit.cc --------------------------------------------------------------------------------
// Tool process: no core dumps, bounded open files and file size.
Status apply_rlimits();

// --- seccomp.cc --------------------------------------------------------------------------------
struct DeniedSyscall {
  const char* name;
  const char* why;
};
// The deny list, for docs and tests.
const std::vector<DeniedSyscall>& denied_syscalls();
// The deny list compiled to a BPF program (struct sock_filter[]), by the agent while the run
// sets up; it reaches the tool over a socket pair.
Status compile_seccomp_filter(std::string& program);
// Tool process, last step before exec: loads the program (requires no_new_privs).
Status install_seccomp_filter(const std::string& program);

}  // namespace airlock::sandbox
