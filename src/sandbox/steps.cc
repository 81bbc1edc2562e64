// Helpers shared by the kernel-concern steps: the Status of a failed syscall, and writing a
// small control file (/proc/PID/uid_map, cgroup files) in one write(2).
#include "sandbox/steps.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace airlock::sandbox {

Status Status::Sys(std::string_view call, std::string_view args, int err) {
  return {std::string(call) + "(" + std::string(args) + "): " + std::strerror(err) +
          " (errno " + std::to_string(err) + ")"};
}

Status write_file(const std::string& path, std::string_view content, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Sys("open", path, errno);
  const ssize_t n = ::write(fd, content.data(), content.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(content.size())) {
    std::string shown(content.substr(0, content.find('\n')));
    return Status::Sys("write", path + " <- \"" + shown + "\"", n < 0 ? err : EIO);
  }
  return Status::Ok();
}

}  // namespace airlock::sandbox
