// Capabilities: the tool runs with none, in every set, and cannot get one back. The bounding set
// is emptied first (while CAP_SETPCAP is still held), so that exec of anything — a setuid-root
// binary or one with file capabilities — computes an empty permitted set; securebits are locked
// so that uid 0 inside the namespace is not special at exec; then the process's own sets are
// cleared. no_new_privs additionally makes exec ignore setuid/setgid bits and file
// capabilities, and is what allows an unprivileged process to load a seccomp filter.
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/steps.h"

namespace airlock::sandbox {

Status drop_capabilities(uint64_t keep) {
  for (int cap = 0;; ++cap) {
    if (cap < 64 && (keep >> cap & 1)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL && cap > CAP_SYS_ADMIN) break;  // past the kernel's last capability
      return Status::Sys("prctl", "PR_CAPBSET_DROP, " + std::to_string(cap), errno);
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    return Status::Sys("prctl", "PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL", errno);
  }
  const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                             SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                             SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if (::prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0) {
    return Status::Sys("prctl", "PR_SET_SECUREBITS, NOROOT|NO_SETUID_FIXUP|… (locked)", errno);
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (keep != 0 && ::syscall(SYS_capget, &header, data) != 0) {
    return Status::Sys("capget", "current sets", errno);
  }
  // What is kept and held stays permitted and effective; nothing is inheritable.
  const uint64_t held = data[0].permitted | uint64_t{data[1].permitted} << 32;
  const uint64_t kept = held & keep;
  for (int i = 0; i < 2; ++i) {
    data[i].effective = data[i].permitted = static_cast<uint32_t>(kept >> (32 * i));
    data[i].inheritable = 0;
  }
  header = {_LINUX_CAPABILITY_VERSION_3, 0};
  if (::syscall(SYS_capset, &header, data) != 0) {
    return Status::Sys("capset", keep ? "the kept set" : "all sets empty", errno);
  }
  return Status::Ok();
}

Status set_no_new_privs() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return Status::Sys("prctl", "PR_SET_NO_NEW_PRIVS, 1", errno);
  }
  return Status::Ok();
}

}  // namespace airlock::sandbox
