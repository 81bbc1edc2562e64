// seccomp: a deny list, loaded last before exec, on top of the namespaces and the empty
// capability sets. Each entry is a kernel interface that a tool has no business using and that
// has carried container escapes or host-wide effects; most would fail anyway without
// capabilities, and the filter removes the kernel code path itself from reach. Denied calls
// return EPERM (clone3: ENOSYS, so that libc falls back to clone, whose flags can be checked);
// a syscall of another architecture (32-bit int 0x80, x32) kills the process.
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/steps.h"

namespace airlock::sandbox {

const std::vector<DeniedSyscall>& denied_syscalls() {
  static const std::vector<DeniedSyscall> kList = {
      {"ptrace", "reads and rewrites other processes of the run (and the agent's init)"},
      {"process_vm_readv", "reads another process's memory without ptrace"},
      {"process_vm_writev", "writes another process's memory without ptrace"},
      {"kcmp", "probes other processes' kernel objects"},
      {"pidfd_getfd", "steals a descriptor from another process"},
      {"kexec_load", "replaces the running kernel"},
      {"kexec_file_load", "replaces the running kernel"},
      {"init_module", "loads kernel code"},
      {"finit_module", "loads kernel code"},
      {"delete_module", "unloads kernel code"},
      {"mount", "the root is built before the filter; changing it afterwards is an escape route"},
      {"umount2", "would uncover what the sandbox's mounts hide"},
      {"pivot_root", "changes the root after set-up"},
      {"chroot", "changes the root after set-up"},
      {"move_mount", "new mount API: changes mounts after set-up"},
      {"open_tree", "new mount API: clones mounts"},
      {"fsopen", "new mount API: creates filesystems"},
      {"fsconfig", "new mount API"},
      {"fsmount", "new mount API"},
      {"fspick", "new mount API: reconfigures existing mounts"},
      {"mount_setattr", "new mount API: changes mount flags (read-only)"},
      {"open_by_handle_at", "opens host files by handle, bypassing the mount namespace"},
      {"name_to_handle_at", "produces handles for open_by_handle_at"},
      {"bpf", "loads programs into the kernel; a large attack surface"},
      {"perf_event_open", "observes other processes and the kernel; large attack surface"},
      {"keyctl", "the kernel keyring is not namespaced"},
      {"add_key", "the kernel keyring is not namespaced"},
      {"request_key", "the kernel keyring is not namespaced"},
      {"userfaultfd", "stalls the kernel at will; a staple of kernel exploits"},
      {"io_uring_setup", "bypasses seccomp for the operations it performs; large attack surface"},
      {"io_uring_enter", "see io_uring_setup"},
      {"io_uring_register", "see io_uring_setup"},
      {"unshare", "new namespaces after set-up would undo the sandbox's (a new user namespace "
                  "regains capabilities inside it)"},
      {"setns", "joins other namespaces"},
      {"reboot", "host-wide effect"},
      {"swapon", "host-wide effect"},
      {"swapoff", "host-wide effect"},
      {"settimeofday", "setting the clock: host-wide effect"},
      {"clock_settime", "setting the clock: host-wide effect"},
      {"clock_adjtime", "setting the clock: host-wide effect"},
      {"adjtimex", "setting the clock: host-wide effect"},
      {"acct", "process accounting: host-wide effect"},
      {"quotactl", "filesystem quotas: host-wide effect"},
      {"syslog", "reads the kernel log (addresses that defeat KASLR)"},
      {"lookup_dcookie", "kernel profiling interface"},
      {"vhangup", "hangs up the terminal"},
      {"iopl", "raw I/O port access"},
      {"ioperm", "raw I/O port access"},
      {"uselib", "obsolete loader interface"},
  };
  return kList;
}

namespace {

class FilterContext {
 public:
  FilterContext() : ctx_(seccomp_init(SCMP_ACT_ALLOW)) {}
  ~FilterContext() {
    if (ctx_) seccomp_release(ctx_);
  }
  scmp_filter_ctx get() const { return ctx_; }

 private:
  scmp_filter_ctx ctx_;
};

}  // namespace

Status compile_seccomp_filter(std::string& program) {
  FilterContext f;
  if (!f.get()) return Status::Error("seccomp_init(SCMP_ACT_ALLOW) failed");
  int rc = seccomp_attr_set(f.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc != 0) return Status::Sys("seccomp_attr_set", "SCMP_FLTATR_ACT_BADARCH, KILL_PROCESS", -rc);
  for (const auto& d : denied_syscalls()) {
    const int nr = seccomp_syscall_resolve_name(d.name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    rc = seccomp_rule_add(f.get(), SCMP_ACT_ERRNO(EPERM), nr, 0);
    if (rc != 0) return Status::Sys("seccomp_rule_add", std::string(d.name) + ", EPERM", -rc);
  }
  // clone3 passes its flags in memory the filter cannot read: ENOSYS makes libc use clone.
  rc = seccomp_rule_add(f.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc != 0) return Status::Sys("seccomp_rule_add", "clone3, ENOSYS", -rc);
  // clone with any namespace flag (a new user namespace regains every capability inside).
  for (const unsigned long flag : {CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
                                   CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP}) {
    rc = seccomp_rule_add(f.get(), SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
    if (rc != 0) return Status::Sys("seccomp_rule_add", "clone(CLONE_NEW*), EPERM", -rc);
  }
  // socket(AF_VSOCK): a channel to the hypervisor that no network namespace covers.
  rc = seccomp_rule_add(f.get(), SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                        SCMP_A0(SCMP_CMP_EQ, AF_VSOCK));
  if (rc != 0) return Status::Sys("seccomp_rule_add", "socket(AF_VSOCK), EPERM", -rc);
  // Terminal input injection (TIOCSTI) and console control (TIOCLINUX), should a terminal
  // ever be reachable despite the new session.
  for (const unsigned long req : {static_cast<unsigned long>(TIOCSTI),
                                  static_cast<unsigned long>(TIOCLINUX)}) {
    rc = seccomp_rule_add(f.get(), SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, req));
    if (rc != 0) return Status::Sys("seccomp_rule_add", "ioctl(TIOCSTI/TIOCLINUX), EPERM", -rc);
  }
  // The BPF program, as seccomp_load would install it (libseccomp exports to a descriptor).
  const int fd = ::memfd_create("airlock-seccomp", MFD_CLOEXEC);
  if (fd < 0) return Status::Sys("memfd_create", "airlock-seccomp", errno);
  rc = seccomp_export_bpf(f.get(), fd);
  const off_t size = rc == 0 ? ::lseek(fd, 0, SEEK_END) : -1;
  program.assign(size > 0 ? static_cast<size_t>(size) : 0, '\0');
  const bool read_back = size > 0 && ::pread(fd, program.data(), program.size(), 0) == size;
  ::close(fd);
  if (rc != 0) return Status::Sys("seccomp_export_bpf", "deny list", -rc);
  if (!read_back || program.size() % sizeof(sock_filter) != 0) {
    return Status::Error("seccomp_export_bpf produced no usable program");
  }
  return Status::Ok();
}

Status install_seccomp_filter(const std::string& program) {
  if (program.empty() || program.size() % sizeof(sock_filter) != 0 ||
      program.size() / sizeof(sock_filter) > BPF_MAXINSNS) {
    return Status::Error("the seccomp program is malformed (" + std::to_string(program.size()) +
                         " bytes)");
  }
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(program.size() / sizeof(sock_filter));
  prog.filter = reinterpret_cast<sock_filter*>(const_cast<char*>(program.data()));
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
    return Status::Sys("seccomp", "SECCOMP_SET_MODE_FILTER", errno);
  }
  return Status::Ok();
}

}  // namespace airlock::sandbox
