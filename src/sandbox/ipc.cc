// IPC namespace: SysV IPC objects and POSIX message queues of the host (and of other runs) are
// out of reach. POSIX queues are reached through an mqueue filesystem, which must be mounted from
// inside the namespace to show its queues rather than the host's.
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>

#include "sandbox/steps.h"

namespace airlock::sandbox {

Status mount_mqueue(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Status::Sys("mkdir", dir, errno);
  if (::mount("mqueue", dir.c_str(), "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return Status::Sys("mount", "mqueue, " + dir + ", MS_NOSUID|MS_NODEV|MS_NOEXEC", errno);
  }
  return Status::Ok();
}

}  // namespace airlock::sandbox
