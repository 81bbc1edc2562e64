// User namespace: the child's root is mapped to the identity that started the sandbox — root
// when started as root, the user otherwise — so that files it creates in the workspace belong to
// that identity and it holds nothing the caller did not. setgroups is denied first (required for
// an unprivileged gid map, and it keeps the child from dropping a group that guards a file).
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "sandbox/steps.h"

namespace airlock::sandbox {

Status write_id_maps(pid_t child, uid_t outer_uid, gid_t outer_gid) {
  const std::string proc = "/proc/" + std::to_string(child);
  if (auto s = write_file(proc + "/setgroups", "deny\n", O_WRONLY); !s.ok()) return s;
  const std::string uid_map = "0 " + std::to_string(outer_uid) + " 1\n";
  if (auto s = write_file(proc + "/uid_map", uid_map, O_WRONLY); !s.ok()) return s;
  return write_file(proc + "/gid_map", "0 " + std::to_string(outer_gid) + " 1\n", O_WRONLY);
}

Status become_namespace_root() {
  // Raw system calls, not glibc's wrappers: in a multi-threaded agent (the connected agent
  // clones from a session's thread) the child is a copy of one thread, and glibc's setxid
  // would wait forever for the other threads of its copied thread list to follow.
  if (::syscall(SYS_setresgid, 0, 0, 0) != 0) return Status::Sys("setresgid", "0, 0, 0", errno);
  if (::syscall(SYS_setresuid, 0, 0, 0) != 0) return Status::Sys("setresuid", "0, 0, 0", errno);
  return Status::Ok();
}

}  // namespace airlock::sandbox
