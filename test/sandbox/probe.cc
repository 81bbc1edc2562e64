// sandbox_probe: the escape battery's hands inside a sandbox. Each command tries one thing a
// sandboxed tool must not be able to do (or must be able to do) and prints one line per attempt:
// "<what>: ALLOWED" or "<what>: DENIED <errno name>". It decides nothing; the tests read the
// lines. Built static so that any image (busybox, host) can run it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

namespace {

int report(const char* what, long rc) {
  if (rc >= 0) {
    std::printf("%s: ALLOWED\n", what);
  } else {
    std::printf("%s: DENIED %s\n", what, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
  }
  std::fflush(stdout);
  return 0;
}

int tcp_connect(const char* host, int port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (std::strchr(host, ':')) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, host, &a->sin6_addr);
    len = sizeof *a;
    family = AF_INET6;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, host, &a->sin_addr);
    len = sizeof *a;
  }
  const int fd = socket(family, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  return connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: sandbox_probe syscalls|int80|ptrace PID|tiocsti|abstract NAME|"
                         "connect HOST PORT|udp HOST PORT|alloc MIB|caps|fds\n");
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "syscalls") {
    report("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER));
    report("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS));
    report("clone(CLONE_NEWUSER)", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0) == 0
                                       ? (_exit(0), 0L) : -1L);
    report("setns", setns(0, 0));
    report("mount(tmpfs)", mount("tmpfs", "/tmp", "tmpfs", 0, nullptr));
    report("umount2(/proc)", umount2("/proc", MNT_DETACH));
    report("chroot", chroot("/tmp"));
    report("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
    report("bpf", syscall(SYS_bpf, 0, nullptr, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0));
    report("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
    report("add_key", syscall(SYS_add_key, "user", "x", "y", 1, -2));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("io_uring_setup", syscall(SYS_io_uring_setup, 1, nullptr));
    report("socket(AF_VSOCK)", socket(AF_VSOCK, SOCK_STREAM, 0));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, nullptr, 0));
    report("init_module", syscall(SYS_init_module, nullptr, 0, ""));
    report("reboot", syscall(SYS_reboot, 0, 0, 0, nullptr));
    report("swapoff", syscall(SYS_swapoff, "/nonexistent"));
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    report("clock_settime", clock_settime(CLOCK_REALTIME, &ts));
    report("process_vm_readv", syscall(SYS_process_vm_readv, 1, nullptr, 0, nullptr, 0, 0));
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, nullptr, 0));
    report("ptrace(PTRACE_TRACEME)", ptrace(PTRACE_TRACEME, 0, nullptr, nullptr));
    report("syslog", syscall(SYS_syslog, 3, nullptr, 0));
    report("clone3", syscall(SYS_clone3, nullptr, 0));
    return 0;
  }
  if (cmd == "int80") {
    // A 32-bit system call (getpid is 20 on i386) from a 64-bit process: the filter is for
    // x86_64, so another architecture's call must kill the process, not slip past the list.
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
    std::printf("int80 getpid returned %ld\n", r);
    return 0;
  }
  if (cmd == "ptrace" && argc == 3) {
    const pid_t pid = std::atoi(argv[2]);
    report("ptrace(PTRACE_ATTACH)", ptrace(PTRACE_ATTACH, pid, nullptr, nullptr));
    report("ptrace(PTRACE_SEIZE)", ptrace(PTRACE_SEIZE, pid, nullptr, nullptr));
    const std::string mem = "/proc/" + std::string(argv[2]) + "/mem";
    report("open(/proc/PID/mem)", open(mem.c_str(), O_RDONLY));
    report("open(/proc/1/mem)", open("/proc/1/mem", O_RDONLY));
    report("open(/proc/1/environ)", open("/proc/1/environ", O_RDONLY));
    return 0;
  }
  if (cmd == "tiocsti") {
    char c = 'X';
    for (int fd = 0; fd <= 2; ++fd) {
      const std::string what = "ioctl(" + std::to_string(fd) + ", TIOCSTI)";
      report(what.c_str(), ioctl(fd, TIOCSTI, &c));
    }
    const int tty = open("/dev/tty", O_RDWR);
    report("open(/dev/tty)", tty);
    if (tty >= 0) report("ioctl(/dev/tty, TIOCSTI)", ioctl(tty, TIOCSTI, &c));
    return 0;
  }
  if (cmd == "abstract" && argc == 3) {
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const size_t n = std::strlen(argv[2]);
    std::memcpy(a.sun_path + 1, argv[2], n);
    report("connect(abstract unix socket)",
           connect(fd, reinterpret_cast<sockaddr*>(&a), offsetof(sockaddr_un, sun_path) + 1 + n));
    return 0;
  }
  if (cmd == "connect" && argc == 4) {
    const std::string what = std::string("connect(") + argv[2] + " port " + argv[3] + ")";
    report(what.c_str(), tcp_connect(argv[2], std::atoi(argv[3])));
    return 0;
  }
  if (cmd == "udp" && argc == 4) {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::atoi(argv[3]));
    inet_pton(AF_INET, argv[2], &a.sin_addr);
    const char query[] = "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07" "example\x03" "com\x00\x00\x01\x00\x01";
    const std::string what = std::string("sendto(udp ") + argv[2] + ":" + argv[3] + ")";
    report(what.c_str(), sendto(fd, query, sizeof query - 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof a));
    return 0;
  }
  if (cmd == "alloc" && argc == 3) {
    const size_t mib = std::strtoul(argv[2], nullptr, 10);
    std::vector<char*> blocks;
    for (size_t i = 0; i < mib; ++i) {
      char* p = static_cast<char*>(std::malloc(1 << 20));
      if (!p) return report("malloc", -1), 3;
      std::memset(p, 0x5a, 1 << 20);
      blocks.push_back(p);
    }
    std::printf("allocated %zu MiB\n", mib);
    return 0;
  }
  if (cmd == "caps") {
    FILE* f = std::fopen("/proc/self/status", "r");
    char line[256];
    while (f && std::fgets(line, sizeof line, f)) {
      if (!std::strncmp(line, "Cap", 3) || !std::strncmp(line, "Uid", 3) ||
          !std::strncmp(line, "NoNewPrivs", 10) || !std::strncmp(line, "Seccomp:", 8)) {
        std::fputs(line, stdout);
      }
    }
    return 0;
  }
  if (cmd == "fds") {
    for (int fd = 0; fd < 1024; ++fd) {
      if (fcntl(fd, F_GETFD) >= 0) std::printf("open fd %d\n", fd);
    }
    return 0;
  }
  std::fprintf(stderr, "sandbox_probe: unknown command %s\n", cmd.c_str());
  return 2;
}
