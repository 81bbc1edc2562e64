// Network namespace: the run gets one of its own with nothing in it but `lo`. It has no route
// anywhere and no resolver; the only way out is the egress proxy's listening socket, which is
// created here — inside the namespace, on its loopback — and handed to the proxy outside.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/steps.h"

namespace airlock::sandbox {

Status bring_up_loopback() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Sys("socket", "AF_INET, SOCK_DGRAM", errno);
  ifreq req{};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(fd, SIOCGIFFLAGS, &req) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::Sys("ioctl", "lo, SIOCGIFFLAGS", err);
  }
  req.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (::ioctl(fd, SIOCSIFFLAGS, &req) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::Sys("ioctl", "lo, SIOCSIFFLAGS, IFF_UP", err);
  }
  ::close(fd);
  return Status::Ok();
}

int listen_on_loopback(uint16_t port, Status& status) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    status = Status::Sys("socket", "AF_INET, SOCK_STREAM", errno);
    return -1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 128) != 0) {
    status = Status::Sys("bind/listen", "127.0.0.1:" + std::to_string(port), errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace airlock::sandbox
