// User namespace: the child's root is mapped to the identity that started the sandbox — root
// when started as root, the user otherwise — so that files it creates in the workspace belong to
// that identity and it holds nothing the caller did not. setgroups is denied first (required for
// an unprivileged gid map, and it keeps the child from dropping a group that guards a file).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "sandbox/steps.h"

namespace airlock::sandbox {
namespace {

Status write_file(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Status::Sys("open", path, errno);
  const ssize_t n = ::write(fd, content.data(), content.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(content.size())) {
    return Status::Sys("write", path + " <- \"" + content.substr(0, content.size() - 1) + "\"",
                       n < 0 ? err : EIO);
  }
  return Status::Ok();
}

}  // namespace

Status Status::Sys(std::string_view call, std::string_view args, int err) {
  return {std::string(call) + "(" + std::string(args) + "): " + std::strerror(err) +
          " (errno " + std::to_string(err) + ")"};
}

Status write_id_maps(pid_t child, uid_t outer_uid, gid_t outer_gid) {
  const std::string proc = "/proc/" + std::to_string(child);
  if (auto s = write_file(proc + "/setgroups", "deny\n"); !s.ok()) return s;
  if (auto s = write_file(proc + "/uid_map", "0 " + std::to_string(outer_uid) + " 1\n"); !s.ok()) {
    return s;
  }
  return write_file(proc + "/gid_map", "0 " + std::to_string(outer_gid) + " 1\n");
}

Status become_namespace_root() {
  if (::setresgid(0, 0, 0) != 0) return Status::Sys("setresgid", "0, 0, 0", errno);
  if (::setresuid(0, 0, 0) != 0) return Status::Sys("setresuid", "0, 0, 0", errno);
  return Status::Ok();
}

}  // namespace airlock::sandbox
