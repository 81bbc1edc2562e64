// Containment: the ordered steps that turn a cloned child into a sandboxed tool, and the parent
// side that sets up, watches and ends a run. The order is the security argument:
//
//   parent  cgroup v2: make the run's cgroup and write its limits
//   parent  clone(NEWUSER|NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS)   namespaces exist before any step
//           (cgroup v2: straight into the run's cgroup — CLONE_INTO_CGROUP)
//   parent  write uid/gid maps and release the child; then, while the child works: cgroup v1:
//           make the run's cgroups, write their limits and move the child in; say so; compile
//           the seccomp program and send it over a socket pair
//   child   1. become root of its user namespace (capabilities inside it only)
//           2. hostname                                    (UTS)
//           3. read-only root, /workspace, /tmp, /proc, /dev; pivot_root   (MOUNT, IPC)
//           4. loopback up; the egress proxy's socket      (NET) — after the root, when the
//              agent's cgroup work, which would slow it down, is mostly done
//           5. wait until it is in the run's cgroup; a cgroup namespace rooted there (it
//              cannot see or leave it) — every process forked from here on starts inside
//           6. become the run's init: no dumping; signals taken synchronously  (PID)
//           7. fork the tool, then reap and forward signals until it exits — with
//              RunSpec::clean_init, as sandbox-agent-init, exec'd without capabilities, so
//              that no copy of the agent's memory stays in the sandbox
//   tool    8. new session (no controlling terminal: TIOCSTI has no target); read the
//              seccomp program
//           9. stdin /dev/null, stdout/stderr to the parent's pipes; every other descriptor
//              closed; working directory /workspace
//          10. rlimits; every capability dropped; no_new_privs
//          11. seccomp deny list — last, because the steps above need mount, unshare, …
//          12. exec the tool
//
// Any failure ends the run before the tool starts; the failing step's message (syscall,
// arguments, errno) reaches the parent through a close-on-exec pipe, whose EOF with nothing
// in it means the tool is running.
#include "sandbox/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>

extern char** environ;

namespace airlock::sandbox {
namespace {

using Clock = std::chrono::steady_clock;

// What the child needs, prepared by the parent before clone (the child copies it).
struct ChildPlan {
  const RunSpec* spec;
  RootPlan root;
  std::vector<char*> argv;
  std::vector<char*> envp;
  int sync_read = -1;     // parent -> child: 'm' maps written, then 'c' in the run's cgroup
  int ready_write = -1;   // child -> parent, agent started unprivileged: ready for the maps
  int error_write = -1;   // child -> parent: set-up failure text; EOF at exec
  int out_write = -1, err_write = -1;
  int fd_socket = -1;     // child -> parent: the proxy's listening socket (SCM_RIGHTS)
  int filter_read = -1;   // parent -> tool: the seccomp program, then EOF (a stream socket,
                          // so that the parent's send cannot raise SIGPIPE)
  int stdin_fd = -1;      // the tool's standard input; -1: /dev/null
  int init_fd = -1;       // sandbox-agent-init (O_PATH), to exec once the tool runs; -1: none
};

// Child, first thing: closes every descriptor it inherited from the agent except those the
// plan names. The agent may hold many (other sessions' channels, its link to airlockd); the
// run's init never execs, so close-on-exec would not close them.
void close_inherited(const ChildPlan& p) {
  std::vector<int> keep{0, 1, 2};
  for (int fd : {p.sync_read, p.ready_write, p.error_write, p.out_write, p.err_write, p.fd_socket,
                 p.filter_read, p.stdin_fd, p.init_fd}) {
    if (fd >= 0) keep.push_back(fd);
  }
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  unsigned from = 0;
  for (int fd : keep) {
    if (static_cast<unsigned>(fd) > from) ::syscall(SYS_close_range, from, fd - 1u, 0u);
    from = static_cast<unsigned>(fd) + 1;
  }
  ::syscall(SYS_close_range, from, ~0u, 0u);
}

void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text.remove_prefix(static_cast<size_t>(n));
  }
}

[[noreturn]] void fail(int error_fd, std::string_view step, const Status& s, int code) {
  std::string msg(step);
  msg += ": ";
  msg += s.error;
  write_all(error_fd, msg);
  ::_exit(code);
}

// One byte carrying one descriptor (SCM_RIGHTS): the message both ends build.
struct FdMessage {
  char byte = 'F';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  FdMessage() {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
  }
  FdMessage(const FdMessage&) = delete;
  FdMessage& operator=(const FdMessage&) = delete;
};

Status send_fd(int channel, int fd) {
  FdMessage m;
  cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  if (::sendmsg(channel, &m.msg, MSG_NOSIGNAL) != 1) return Status::Sys("sendmsg", "SCM_RIGHTS", errno);
  return Status::Ok();
}

int receive_fd(int channel) {
  FdMessage m;
  if (::recvmsg(channel, &m.msg, MSG_CMSG_CLOEXEC) != 1) return -1;
  cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

// Steps 8-12, in the tool process.
[[noreturn]] void tool_main(const ChildPlan& p) {
  const int err = p.error_write;
  if (::setsid() < 0) fail(err, "setsid", Status::Sys("setsid", "", errno), kExitSetupFailed);
  std::string filter;
  // A few KiB; anything near the kernel's limit of BPF_MAXINSNS instructions is refused later.
  if (!read_to_end(p.filter_read, filter, 1 << 20) || filter.empty()) {
    fail(err, "seccomp", Status::Error("the filter program did not arrive from the agent"),
         kExitSetupFailed);
  }
  const int input = p.stdin_fd >= 0 ? p.stdin_fd : ::open("/dev/null", O_RDONLY);
  if (input < 0) fail(err, "stdin", Status::Sys("open", "/dev/null", errno), kExitSetupFailed);
  if (::dup2(input, 0) < 0 || ::dup2(p.out_write, 1) < 0 || ::dup2(p.err_write, 2) < 0) {
    fail(err, "stdio", Status::Sys("dup2", "0, 1, 2", errno), kExitSetupFailed);
  }
  // Keep only 0-2 and the error pipe (moved to 3, close-on-exec).
  if (::dup3(err, 3, O_CLOEXEC) < 0) fail(err, "fds", Status::Sys("dup3", "3", errno), kExitSetupFailed);
  if (::syscall(SYS_close_range, 4u, ~0u, 0u) != 0) {
    fail(3, "fds", Status::Sys("close_range", "4, ~0", errno), kExitSetupFailed);
  }
  if (::chdir("/workspace") != 0) fail(3, "chdir", Status::Sys("chdir", "/workspace", errno), kExitSetupFailed);
  if (auto s = apply_rlimits(); !s.ok()) fail(3, "rlimits", s, kExitSetupFailed);
  if (auto s = drop_capabilities(); !s.ok()) fail(3, "capabilities", s, kExitSetupFailed);
  if (auto s = set_no_new_privs(); !s.ok()) fail(3, "no_new_privs", s, kExitSetupFailed);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (auto s = install_seccomp_filter(filter); !s.ok()) fail(3, "seccomp", s, kExitSetupFailed);
  environ = const_cast<char**>(p.envp.data());
  ::execvp(p.argv[0], p.argv.data());
  const int e = errno;
  const int code = (e == ENOENT || e == ENOTDIR) ? kExitNotFound : kExitNotExecutable;
  fail(3, "exec", Status::Sys("execvp", p.argv[0], e), code);
}

// The init starts the tool. It shares the init's memory until it execs (CLONE_VM | CLONE_VFORK,
// as posix_spawn does): no page tables to copy and no copy-on-write faults on its way to exec.
// The init is suspended meanwhile, so the two never run on that memory at once; what the tool
// allocates stays allocated in the init, which ends with the run. AddressSanitizer follows one
// stack per thread and cannot tell a task on another stack in the same memory from a stack
// overflow, so the sanitizer build forks instead.
pid_t start_tool(const ChildPlan& p) {
#if defined(__SANITIZE_ADDRESS__)
  const pid_t tool = ::fork();
  if (tool == 0) tool_main(p);
  return tool;
#else
  auto entry = [](void* plan) -> int { tool_main(*static_cast<const ChildPlan*>(plan)); };
  alignas(16) static char stack[256 * 1024];
  return ::clone(entry, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD,
                 const_cast<ChildPlan*>(&p));
#endif
}

// Steps 1-7, in the cloned child (PID 1 of the new namespace).
[[noreturn]] void child_main(const ChildPlan& p) {
  const int err = p.error_write;
  close_inherited(p);
  // The agent's death ends the run.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  // An agent without root can write this child's id maps only while the child is dumpable:
  // the /proc files of a non-dumpable process belong to root. So it is, until the maps are
  // written — a copy of the agent's memory that processes of the same user could attach to
  // for that long (docs/sandbox.md). An agent running as root never does this.
  if (p.ready_write >= 0) {
    if (::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 || ::write(p.ready_write, "r", 1) != 1) {
      ::_exit(kExitSetupFailed);
    }
    ::close(p.ready_write);
  }
  // EOF instead of the byte: the parent gave up (it reports why).
  char go = 0;
  if (::read(p.sync_read, &go, 1) != 1 || go != 'm') ::_exit(kExitSetupFailed);
  if (p.ready_write >= 0 && ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) ::_exit(kExitSetupFailed);
  if (auto s = become_namespace_root(); !s.ok()) fail(err, "user namespace", s, kExitSetupFailed);
  if (auto s = set_hostname(p.spec->name); !s.ok()) fail(err, "hostname", s, kExitSetupFailed);
  if (auto s = build_root(p.root); !s.ok()) fail(err, "root filesystem", s, kExitSetupFailed);
  if (auto s = bring_up_loopback(); !s.ok()) fail(err, "network", s, kExitSetupFailed);
  if (p.fd_socket >= 0) {
    Status s;
    const int listener = listen_on_loopback(p.spec->proxy_port, s);
    if (listener < 0) fail(err, "egress proxy socket", s, kExitSetupFailed);
    if (s = send_fd(p.fd_socket, listener); !s.ok()) fail(err, "egress proxy socket", s, kExitSetupFailed);
    ::close(listener);
    ::close(p.fd_socket);
  }
  if (::read(p.sync_read, &go, 1) != 1 || go != 'c') ::_exit(kExitSetupFailed);
  ::close(p.sync_read);
  if (auto s = enter_cgroup_namespace(); !s.ok()) fail(err, "cgroup namespace", s, kExitSetupFailed);
  if (auto s = prepare_init(); !s.ok()) fail(err, "init", s, kExitSetupFailed);
  const pid_t tool = start_tool(p);
  if (tool < 0) fail(err, "start the tool", Status::Sys("clone", "tool", errno), kExitSetupFailed);
  ::close(p.filter_read);
  ::close(p.out_write);
  ::close(p.err_write);
  // The tool's stdin is the tool's alone: its end must close when the tool exits.
  if (p.stdin_fd >= 0) ::close(p.stdin_fd);
  if (p.init_fd >= 0) {
    // A clean init: the same signals blocked (sigwaitinfo), no capability, nothing of
    // the agent's memory. The error pipe closes at exec (close-on-exec), as the tool's did.
    if (auto s = drop_capabilities(); !s.ok()) fail(err, "clean init", s, kExitSetupFailed);
    if (auto s = set_no_new_privs(); !s.ok()) fail(err, "clean init", s, kExitSetupFailed);
    const std::string tool_pid = std::to_string(tool);
    char name[] = "sandbox-agent-init";
    char* argv[] = {name, const_cast<char*>(tool_pid.c_str()), nullptr};
    char* envp[] = {nullptr};
    ::syscall(SYS_execveat, p.init_fd, "", argv, envp, AT_EMPTY_PATH);
    fail(err, "clean init", Status::Sys("execveat", "sandbox-agent-init", errno), kExitSetupFailed);
  }
  ::close(err);
  ::_exit(run_init(tool));
}

// The agent's own directory for runs of this user: `runtime_dir`/airlock-sandbox-UID, made once
// and kept. Every run mounts its new root on root/ in it, inside the run's own mount namespace
// (so a run leaves nothing behind, and the host never sees what is mounted there); image
// "host" keeps its /etc copies in it. Nobody but the user may enter it, so that nobody can swap
// what is in it while a run builds its root.
// A directory (not a symlink) of this effective user that nobody else may enter.
bool is_private_dir(const std::string& dir) {
  struct stat st {};
  return ::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() &&
         (st.st_mode & 077) == 0;
}

Status private_runtime_dir(const std::string& runtime_dir, std::string& dir, std::string& root) {
  dir = sandbox_dir(runtime_dir);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Status::Sys("mkdir", dir, errno);
  if (!is_private_dir(dir)) {
    return Status::Error(dir + " is not a directory private to uid " +
                         std::to_string(::geteuid()) + " (mode 0700): remove it, it is made again");
  }
  root = dir + "/root";
  if (::mkdir(root.c_str(), 0700) != 0 && errno != EEXIST) return Status::Sys("mkdir", root, errno);
  return Status::Ok();
}

// A descriptor closed when it goes out of scope.
struct OwnedFd {
  int fd = -1;
  OwnedFd() = default;
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { reset(); }
  int get() const { return fd; }
  void reset(int next = -1) {
    if (fd >= 0) ::close(fd);
    fd = next;
  }
};

struct Pipe {
  int r = -1, w = -1;
  bool open(int flags) {
    int fds[2];
    if (::pipe2(fds, flags) != 0) return false;
    r = fds[0], w = fds[1];
    return true;
  }
  // A one-way stream socket pair: written with send(MSG_NOSIGNAL), so that a reader that died
  // gives EPIPE rather than a signal to the whole agent.
  bool open_stream() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return false;
    r = fds[0], w = fds[1];
    return true;
  }
  void close_r() { if (r >= 0) ::close(r), r = -1; }
  void close_w() { if (w >= 0) ::close(w), w = -1; }
  ~Pipe() { close_r(), close_w(); }
};

// One output stream of the tool: cap, redaction, delivery.
class OutputPump {
 public:
  OutputPump(int stream, const RunSpec& spec, RunResult& result)
      : stream_(stream), spec_(spec), result_(result) {
    if (spec.redaction) redactor_ = std::make_unique<redact::StreamRedactor>(spec.redaction);
  }
  void feed(std::string_view bytes) {
    result_.output_bytes[stream_] += bytes.size();
    if (result_.truncated[stream_]) return;
    const uint64_t room = spec_.limits.output_limit - kept_;
    const bool over = bytes.size() > room;
    if (over) bytes = bytes.substr(0, room);
    kept_ += bytes.size();
    deliver(bytes);
    if (over) {
      result_.truncated[stream_] = true;
      finish();
      spec_.output(stream_, "\n[airlock: output truncated at " +
                                format_bytes(spec_.limits.output_limit) + " (" +
                                (stream_ == 1 ? "stdout" : "stderr") +
                                "); raise sandbox.resources.output_limit to keep more]\n");
    }
  }
  void finish() {
    if (!redactor_) return;
    std::string out;
    redactor_->finish(out);
    if (!out.empty()) spec_.output(stream_, out);
    redactor_->take_new_counts([&](size_t secret, uint64_t n) {
      result_.redacted[spec_.redaction->name(secret)] += n;
    });
  }

 private:
  void deliver(std::string_view bytes) {
    if (bytes.empty()) return;
    if (!redactor_) {
      spec_.output(stream_, bytes);
      return;
    }
    std::string out;
    redactor_->write(bytes, out);
    if (!out.empty()) spec_.output(stream_, out);
  }

  int stream_;
  const RunSpec& spec_;
  RunResult& result_;
  std::unique_ptr<redact::StreamRedactor> redactor_;
  uint64_t kept_ = 0;
};

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

RunResult run_sandboxed(const RunSpec& spec, const CgroupRoots& cgroup_roots) {
  RunResult result;
  const auto started = Clock::now();
  auto setup_error = [&](std::string message) {
    result.setup_failed = true;
    result.exit_code = kExitSetupFailed;
    result.error = std::move(message);
    return result;
  };
  if (spec.argv.empty()) return setup_error("no command to run");

  std::string runtime, staging;
  if (auto s = private_runtime_dir(spec.runtime_dir, runtime, staging); !s.ok()) {
    return setup_error(s.error);
  }

  // The run's cgroup(s). v2: made now, and the child is cloned straight into it (nothing is
  // migrated). v1, whose hierarchies a process can only be moved into: made and joined while
  // the child builds its root — the move may wait for an RCU grace period in the kernel.
  std::unique_ptr<Cgroup> cgroup;
  auto make_cgroup = [&]() -> std::string {
    Status status;
    cgroup = Cgroup::create(cgroup_roots, spec.run_id, spec.limits, status);
    if (!cgroup) {
      if (status.error.find("errno 13") != std::string::npos) {
        status.error += "; sandbox-agent needs a cgroup it may write: run it as root, or "
                        "delegate its cgroup to the user it runs as";
      }
      return "cgroup: " + status.error;
    }
    result.cgroup = cgroup->describe();
    return {};
  };
  OwnedFd cgroup_dir;
  // (With no usable hierarchy at all, make_cgroup only says why: better before the clone.)
  if (!cgroup_roots.v2.empty() || !cgroup_roots.usable()) {
    if (auto e = make_cgroup(); !e.empty()) return setup_error(std::move(e));
    cgroup_dir.reset(cgroup->open_directory());
  }

  ChildPlan plan;
  plan.spec = &spec;
  plan.root = spec.root;
  plan.root.staging = staging;
  plan.root.cache_dir = runtime;
  for (const auto& a : spec.argv) plan.argv.push_back(const_cast<char*>(a.c_str()));
  plan.argv.push_back(nullptr);
  for (const auto& e : spec.env) plan.envp.push_back(const_cast<char*>(e.c_str()));
  plan.envp.push_back(nullptr);

  Pipe sync, error, out, err, filter, ready;
  const bool unprivileged = ::geteuid() != 0;
  if (!sync.open(O_CLOEXEC) || !error.open(O_CLOEXEC) || !out.open(O_CLOEXEC) ||
      !err.open(O_CLOEXEC) || !filter.open_stream() || (unprivileged && !ready.open(O_CLOEXEC))) {
    return setup_error(Status::Sys("pipe2/socketpair", "the run's channels", errno).error);
  }
  int fd_channel[2] = {-1, -1};
  if (spec.on_proxy_socket) {
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fd_channel) != 0) {
      return setup_error(Status::Sys("socketpair", "AF_UNIX, SOCK_SEQPACKET", errno).error);
    }
  }
  plan.sync_read = sync.r;
  plan.ready_write = ready.w;
  plan.error_write = error.w;
  plan.out_write = out.w;
  plan.err_write = err.w;
  plan.fd_socket = fd_channel[1];
  plan.filter_read = filter.r;
  plan.stdin_fd = spec.stdin_fd;
  OwnedFd init_fd;
  if (!spec.clean_init.empty()) {
    init_fd.reset(::open(spec.clean_init.c_str(), O_PATH | O_CLOEXEC));
    if (init_fd.get() < 0) {
      return setup_error(Status::Sys("open", spec.clean_init + ", O_PATH", errno).error);
    }
    plan.init_fd = init_fd.get();
  }

  const unsigned long flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                              CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
  bool placed = false;
  const long pid = clone_into_cgroup(flags, cgroup_dir.get(), placed);
  if (pid < 0) {
    const int e = errno;
    if (fd_channel[0] >= 0) ::close(fd_channel[0]), ::close(fd_channel[1]);
    return setup_error(Status::Sys("clone", "NEWUSER|NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS", e).error);
  }
  if (pid == 0) {
    cgroup_dir.reset();
    ::close(sync.w), ::close(error.r), ::close(out.r), ::close(err.r), ::close(filter.w);
    if (ready.r >= 0) ::close(ready.r);
    if (fd_channel[0] >= 0) ::close(fd_channel[0]);
    child_main(plan);
  }
  const pid_t init = static_cast<pid_t>(pid);
  sync.close_r(), error.close_w(), out.close_w(), err.close_w(), filter.close_r();
  ready.close_w();
  if (fd_channel[1] >= 0) ::close(fd_channel[1]);

  auto abandon = [&](std::string message) {
    ::kill(init, SIGKILL);
    int st;
    ::waitpid(init, &st, 0);
    if (fd_channel[0] >= 0) ::close(fd_channel[0]);
    return setup_error(std::move(message));
  };
  if (unprivileged) {
    char r = 0;
    if (::read(ready.r, &r, 1) != 1) return abandon("user namespace: the child exited before its id maps");
    ready.close_r();
  }
  if (auto s = write_id_maps(init, ::getuid(), ::getgid()); !s.ok()) {
    return abandon("user namespace: " + s.error);
  }
  cgroup_dir.reset();
  if (::write(sync.w, "m", 1) != 1) return abandon(Status::Sys("write", "sync pipe", errno).error);
  if (!placed) {
    if (!cgroup) {
      if (auto e = make_cgroup(); !e.empty()) return abandon(std::move(e));
    }
    if (auto s = cgroup->add(init); !s.ok()) return abandon("cgroup: " + s.error);
  }
  if (::write(sync.w, "c", 1) != 1) return abandon(Status::Sys("write", "sync pipe", errno).error);
  sync.close_w();

  // The tool reads the program before it drops anything; compiling it here overlaps with the
  // child building its root. A program that cannot be built ends the run before the tool runs.
  {
    std::string program;
    if (auto s = compile_seccomp_filter(program); !s.ok()) return abandon("seccomp: " + s.error);
    std::string_view rest = program;
    while (!rest.empty()) {
      const ssize_t n = ::send(filter.w, rest.data(), rest.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // the child is gone: its exit reports why
      rest.remove_prefix(static_cast<size_t>(n));
    }
    filter.close_w();
  }
  if (fd_channel[0] >= 0) {
    // The child sends the socket once its root is built, or fails (then the channel closes).
    const int listener = receive_fd(fd_channel[0]);
    ::close(fd_channel[0]);
    if (listener >= 0) spec.on_proxy_socket(listener);
  }
  if (spec.during_setup) spec.during_setup();

  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, init, 0));
  if (pidfd < 0) return abandon(Status::Sys("pidfd_open", std::to_string(init), errno).error);

  OutputPump pumps[3] = {{0, spec, result}, {1, spec, result}, {2, spec, result}};
  std::string setup_message;
  const auto deadline = started + spec.limits.wall_time;
  constexpr auto kNever = Clock::time_point::max();
  auto kill_at = kNever;  // after a stop request: when to kill
  bool init_done = false, wall_time_hit = false;
  int init_status = 0;
  char buf[64 * 1024];
  auto drain_until = kNever;
  bool stopping = false;
  while (true) {
    pollfd fds[5];
    int n = 0;
    auto add = [&](int fd) {
      if (fd >= 0) fds[n++] = {fd, POLLIN, 0};
    };
    add(out.r), add(err.r), add(error.r);
    if (!init_done) add(pidfd);
    if (!init_done && !stopping && spec.stop_fd >= 0) add(spec.stop_fd);
    if (init_done && out.r < 0 && err.r < 0 && error.r < 0) break;
    const auto now = Clock::now();
    auto next = kNever;
    if (!init_done && !wall_time_hit) next = deadline;
    next = std::min(next, kill_at);
    if (init_done) next = std::min(next, drain_until);
    if (now >= next) {
      // Output still open after the run's init is gone cannot happen (the namespace dies with
      // it); the drain bound is a backstop.
      if (init_done) break;
      if (now >= kill_at) {
        cgroup->kill_all();
        ::kill(init, SIGKILL);
        kill_at = kNever;
        continue;
      }
      wall_time_hit = true;
      cgroup->kill_all();
      ::kill(init, SIGKILL);
      continue;  // the pidfd reports the end
    }
    const int timeout =
        next == kNever
            ? -1
            : static_cast<int>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count()) + 1;
    const int ready = ::poll(fds, n, timeout);
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < n && ready > 0; ++i) {
      if (!fds[i].revents) continue;
      const int fd = fds[i].fd;
      if (fd == pidfd) {
        ::waitpid(init, &init_status, 0);
        init_done = true;
        drain_until = Clock::now() + std::chrono::seconds(2);
        continue;
      }
      if (fd == spec.stop_fd) {
        char consumed[256];
        [[maybe_unused]] auto ignored = ::read(fd, consumed, sizeof consumed);
        stopping = true;
        ::kill(init, SIGTERM);
        kill_at = Clock::now() + spec.stop_grace;
        continue;
      }
      const ssize_t got = ::read(fd, buf, sizeof buf);
      if (got > 0) {
        if (fd == error.r) {
          setup_message.append(buf, static_cast<size_t>(std::min<ssize_t>(got, 4096)));
        } else {
          pumps[fd == out.r ? 1 : 2].feed({buf, static_cast<size_t>(got)});
        }
        continue;
      }
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (fd == out.r) out.close_r();
      else if (fd == err.r) err.close_r();
      else if (fd == error.r) error.close_r();
    }
  }
  ::close(pidfd);
  pumps[1].finish();
  pumps[2].finish();
  result.usage = cgroup->usage();
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);

  result.exit_code = WIFEXITED(init_status) ? WEXITSTATUS(init_status)
                     : WIFSIGNALED(init_status) ? 128 + WTERMSIG(init_status)
                                                : kExitSetupFailed;
  if (!setup_message.empty()) {
    // A set-up step or exec failed: the message says which and why.
    result.error = setup_message;
    result.setup_failed = result.exit_code == kExitSetupFailed;
    return result;
  }
  if (wall_time_hit) {
    result.exit_code = kExitWallTime;
    result.limit = "wall_time";
    result.error = "wall-time limit of " + std::to_string(spec.limits.wall_time.count()) +
                   " ms exceeded: every process of the run was killed";
    return result;
  }
  if (result.usage.oom_kills) {
    result.limit = "memory";
    result.error = "memory limit of " + format_bytes(spec.limits.memory_bytes) +
                   " exceeded: the kernel killed " +
                   plural(result.usage.oom_kills, "process", "processes") + " of the run";
    return result;
  }
  if (result.usage.pids_refused) {
    result.limit = "pids";
    result.error = "pids limit of " + std::to_string(spec.limits.pids) + " reached: " +
                   plural(result.usage.pids_refused, "fork was", "forks were") + " refused";
    return result;
  }
  if (result.truncated[1] || result.truncated[2]) {
    result.limit = "output";
    result.error = "output limit of " + format_bytes(spec.limits.output_limit) +
                   " per stream reached: the rest was dropped";
  }
  return result;
}

namespace {

// The PID in "PREFIX…-PID-SUFFIX" (the second-to-last dash-separated field), if it names a
// process that is gone.
bool owner_is_gone(const std::string& name) {
  const size_t last = name.rfind('-');
  if (last == std::string::npos || last == 0) return false;
  const size_t before = name.rfind('-', last - 1);
  if (before == std::string::npos) return false;
  const std::string pid_text = name.substr(before + 1, last - before - 1);
  if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos ||
      pid_text.size() > 9) {
    return false;
  }
  const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
  return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;
}

}  // namespace

std::string sandbox_dir(const std::string& runtime_dir) {
  return runtime_dir + "/airlock-sandbox-" + std::to_string(::geteuid());
}

size_t remove_leftovers(const CgroupRoots& cgroups, const std::string& runtime_dir) {
  namespace fs = std::filesystem;
  size_t removed = 0;
  std::error_code ec;
  for (const std::string* base : {&cgroups.v2, &cgroups.v1_memory, &cgroups.v1_cpu, &cgroups.v1_pids}) {
    if (base->empty()) continue;
    for (const auto& e : fs::directory_iterator(*base, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("airlock-", 0) != 0 || !e.is_directory(ec) || !owner_is_gone(name)) {
        continue;
      }
      std::ifstream procs(e.path() / "cgroup.procs");
      for (pid_t pid; procs >> pid;) ::kill(pid, SIGKILL);
      for (int i = 0; i < 100; ++i) {
        if (::rmdir(e.path().c_str()) == 0) {
          ++removed;
          break;
        }
        if (errno != EBUSY) break;
        ::usleep(5000);
      }
    }
  }
  // Only a directory that run_sandboxed accepted (private to this user) is cleaned.
  if (const std::string dir = sandbox_dir(runtime_dir); is_private_dir(dir)) {
    removed += remove_stale_etc_copies(dir, "");
  }
  return removed;
}

std::string clean_init_beside_self(std::string& error) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string path = (self.parent_path() / "sandbox-agent-init").string();
  if (ec || ::access(path.c_str(), X_OK) != 0) {
    error = "sandbox-agent-init was not found next to sandbox-agent (" + path + "): install it "
            "there; a sandbox with host-bound credentials needs it";
    return "";
  }
  return path;
}

}  // namespace airlock::sandbox
