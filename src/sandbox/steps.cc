// Helpers shared by the kernel-concern steps: the Status of a failed syscall, writing a small
// control file (/proc/PID/uid_map, cgroup files) in one write(2), reading files and pipes.
#include "sandbox/steps.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
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

bool read_file(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  const bool ok = read_to_end(fd, out, std::string::npos);
  ::close(fd);
  return ok;
}

bool read_to_end(int fd, std::string& out, size_t limit) {
  char buf[64 * 1024];
  bool within = true;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) return within;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    const size_t room = limit - std::min(limit, out.size());
    if (static_cast<size_t>(n) > room) within = false;
    out.append(buf, std::min(room, static_cast<size_t>(n)));
  }
}

}  // namespace airlock::sandbox
