// The sandbox's escape battery: sandbox-agent as a process, running a small image built from
// Debian's busybox-static plus sandbox_probe (test/sandbox/probe.cc), and tools that try to get
// out — and must fail — or to use what they are given — and must succeed. Needs root (CI is).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pty.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/redactor.h"
#include "common/tls.h"
#include "sandbox/cgroup.h"
#include "test/e2e/harness.h"

namespace airlock::test {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;

struct Outcome {
  int code = -1;
  std::string output;  // stdout and stderr of sandbox-agent, interleaved
  json::object report;
  bool has(const std::string& s) const { return output.find(s) != std::string::npos; }
  int64_t num(const char* key) const { return report.at(key).to_number<int64_t>(); }
  std::string str(const char* key) const { return std::string(report.at(key).as_string()); }
};

class Sandbox : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    image_ = new TempDir();
    const std::string bin_dir = image_->path + "/bin";
    fs::create_directories(bin_dir);
    fs::copy_file("/bin/busybox", bin_dir + "/busybox");
    auto [code, list] = run_program("/bin/busybox", {"--list"});
    ASSERT_EQ(code, 0);
    std::istringstream in(list);
    for (std::string applet; std::getline(in, applet);) {
      if (!applet.empty() && applet != "busybox") fs::create_symlink("busybox", bin_dir + "/" + applet);
    }
    fs::copy_file(bin("sandbox_probe"), bin_dir + "/probe");
    // A setuid-root copy: executing it must gain nothing.
    fs::copy_file(bin("sandbox_probe"), bin_dir + "/probe-suid");
    ::chmod((bin_dir + "/probe-suid").c_str(), 04755);
    fs::create_directories(image_->path + "/etc");
    std::ofstream(image_->path + "/etc/passwd") << "root:x:0:0:root:/workspace:/bin/sh\n";
  }
  static void TearDownTestSuite() {
    delete image_;
    image_ = nullptr;
  }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the sandbox tests need root (CI runs them as root)";
  }

  // sandbox.yaml with the busybox image (or `image`) and `extra` under sandbox:.
  std::string config(const std::string& extra = "", const std::string& image = "",
                     const std::string& top = "") {
    const std::string path = dir_.path + "/sandbox-" + std::to_string(configs_++) + ".yaml";
    std::ofstream(path) << top << "sandbox:\n  type: self-hosted\n  name: battery\n  image: "
                        << (image.empty() ? image_->path : image) << "\n"
                        << extra;
    return path;
  }

  Outcome run(const std::string& config_path, const std::string& script,
              const std::string& workspace = "") {
    const std::string report = dir_.path + "/report-" + std::to_string(runs_++) + ".json";
    std::vector<std::string> args = {"run", "--config", config_path, "--report", report,
                                     "--image-store", dir_.path + "/images"};
    if (!workspace.empty()) args.insert(args.end(), {"--workspace", workspace});
    args.insert(args.end(), {"--", "sh", "-c", script});
    auto [code, output] = run_program(bin("sandbox-agent"), args);
    return outcome(code, output, report);
  }

  // A copy of sandbox-agent and a host-image config that another user can reach, whatever the
  // permissions of the build tree's parents: {agent, config}.
  std::pair<std::string, std::string> agent_for_another_user() {
    ::chmod(dir_.path.c_str(), 0755);
    const std::string cfg = config("", "host");
    ::chmod(cfg.c_str(), 0644);
    const std::string agent = dir_.path + "/sandbox-agent";
    fs::copy_file(bin("sandbox-agent"), agent);
    ::chmod(agent.c_str(), 0755);
    return {agent, cfg};
  }

  // The run's exit code and output, with its --report file when there is one.
  static Outcome outcome(int code, std::string output, const std::string& report) {
    Outcome o{code, std::move(output), {}};
    std::ifstream in(report);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!ss.str().empty()) o.report = json::parse(ss.str()).as_object();
    return o;
  }

  static TempDir* image_;
  TempDir dir_;
  int configs_ = 0, runs_ = 0;
};
TempDir* Sandbox::image_ = nullptr;

// find(1) over the whole root except /proc and /dev (whose files never end, like /dev/zero).
const std::string kFindOutsideProcAndDev =
    "find / \\( -path /proc -o -path /dev \\) -prune -o ";

size_t count_lines_with(const std::string& text, const std::string& needle) {
  size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

TEST_F(Sandbox, ToolRunsWithoutPrivilegesInItsOwnNamespaces) {
  // A descriptor the agent inherits without close-on-exec must not reach the tool.
  const int leaked = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 3);
  auto o = run(config(), "probe caps; probe fds; hostname; ls /proc | grep -c '^[0-9]'; "
                         "cat /proc/self/cgroup; ip route; cat /proc/self/status | grep PPid; "
                         "echo core=$(ulimit -c) files=$(ulimit -n); "
                         "readlink /proc/self/fd/0; tty || echo no-tty");
  ::close(leaked);
  EXPECT_EQ(o.code, 0) << o.output;
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    EXPECT_TRUE(o.has(std::string(set) + ":\t0000000000000000")) << set << "\n" << o.output;
  }
  EXPECT_TRUE(o.has("NoNewPrivs:\t1")) << o.output;
  EXPECT_TRUE(o.has("Seccomp:\t2")) << o.output;
  EXPECT_EQ(count_lines_with(o.output, "open fd "), 3u) << o.output;
  EXPECT_TRUE(o.has("battery\n")) << "hostname is the sandbox's name\n" << o.output;
  // init, sh, ls, grep — nothing of the host's.
  EXPECT_TRUE(o.has("\n4\n") || o.has("\n3\n")) << o.output;
  EXPECT_TRUE(o.has("0::/\n")) << "cgroup namespace rooted at the run's cgroup\n" << o.output;
  EXPECT_TRUE(o.has("core=0 files=4096")) << o.output;
  EXPECT_TRUE(o.has("/dev/null\n")) << "stdin is /dev/null\n" << o.output;
  EXPECT_TRUE(o.has("no-tty")) << o.output;
  EXPECT_EQ(o.str("limit"), "");
  EXPECT_TRUE(o.str("cgroup").find("cgroup v") == 0) << o.str("cgroup");
}

TEST_F(Sandbox, DeniedSyscallsFailWithEperm) {
  auto o = run(config(), "probe syscalls");
  EXPECT_EQ(o.code, 0) << o.output;
  EXPECT_EQ(count_lines_with(o.output, ": DENIED EPERM"), 24u) << o.output;
  // clone3's flags are out of the filter's sight: ENOSYS sends libc back to clone.
  EXPECT_TRUE(o.has("clone3: DENIED ENOSYS")) << o.output;
  EXPECT_EQ(count_lines_with(o.output, ": ALLOWED"), 0u) << o.output;
}

TEST_F(Sandbox, ASystemCallOfAnotherArchitectureKillsTheProcess) {
  // The same probe outside the sandbox makes the 32-bit call and lives — unless this kernel
  // runs no 32-bit system calls at all (IA-32 emulation disabled: the call itself faults), in
  // which case there is nothing for the filter to catch.
  auto outside = run_program(bin("sandbox_probe"), {"int80"});
  if (outside.first == 128 + SIGSEGV || outside.first == -SIGSEGV) {
    GTEST_SKIP() << "this kernel runs no 32-bit system calls (IA-32 emulation is disabled)";
  }
  ASSERT_EQ(outside.first, 0) << outside.second;
  ASSERT_NE(outside.second.find("int80 getpid returned"), std::string::npos) << outside.second;
  auto o = run(config(), "probe int80; echo probe-status=$?");
  EXPECT_TRUE(o.has("probe-status=" + std::to_string(128 + SIGSYS))) << o.output;
  EXPECT_FALSE(o.has("int80 getpid returned")) << o.output;
}

TEST_F(Sandbox, CannotPtraceASiblingOrReadTheInit) {
  auto o = run(config(), "sleep 5 & probe ptrace $!; kill $!");
  EXPECT_TRUE(o.has("ptrace(PTRACE_ATTACH): DENIED EPERM")) << o.output;
  EXPECT_TRUE(o.has("ptrace(PTRACE_SEIZE): DENIED EPERM")) << o.output;
  EXPECT_TRUE(o.has("open(/proc/1/mem): DENIED")) << o.output;
  EXPECT_TRUE(o.has("open(/proc/1/environ): DENIED")) << o.output;
}

TEST_F(Sandbox, HostEnvironmentAndProcessesStayOutOfSight) {
  const std::string canary = "AIRLOCK_HOST_CANARY_" + std::to_string(::getpid());
  ::setenv("AIRLOCK_TEST_HOST_SECRET", canary.c_str(), 1);
  auto o = run(config(), "env; cat /proc/*/environ 2>/dev/null; ps -o pid,comm");
  ::unsetenv("AIRLOCK_TEST_HOST_SECRET");
  EXPECT_EQ(o.code, 0) << o.output;
  EXPECT_FALSE(o.has(canary)) << o.output;
  EXPECT_TRUE(o.has("HOME=/workspace")) << o.output;
  EXPECT_FALSE(o.has("sshd") || o.has("systemd") || o.has("sandbox_e2e")) << o.output;
}

TEST_F(Sandbox, TerminalInjectionHasNoTarget) {
  // sandbox-agent started on a terminal (its stdin, stdout and controlling tty): the tool
  // must not be able to push input into it.
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string agent = bin("sandbox-agent");
    const std::string cfg = config();
    ::execl(agent.c_str(), agent.c_str(), "run", "--config", cfg.c_str(), "--", "probe", "tiocsti",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string seen;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;
    seen.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  EXPECT_EQ(count_lines_with(seen, "TIOCSTI): DENIED"), 3u) << seen;
  EXPECT_TRUE(seen.find("open(/dev/tty): DENIED") != std::string::npos) << seen;
  // An injected 'X' would be echoed back by the terminal as input.
  EXPECT_EQ(seen.find("X"), std::string::npos) << seen;
}

TEST_F(Sandbox, NoNetworkButLoopbackAndNoHostSockets) {
  // Listeners on the host's loopback (IPv4, IPv6) and a host abstract unix socket.
  const int v4 = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a4{};
  a4.sin_family = AF_INET;
  a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(v4, reinterpret_cast<sockaddr*>(&a4), sizeof a4), 0);
  ASSERT_EQ(::listen(v4, 4), 0);
  socklen_t len = sizeof a4;
  ::getsockname(v4, reinterpret_cast<sockaddr*>(&a4), &len);
  const std::string port = std::to_string(ntohs(a4.sin_port));
  const int v6 = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 a6{};
  a6.sin6_family = AF_INET6;
  a6.sin6_addr = in6addr_loopback;
  a6.sin6_port = a4.sin_port;
  const bool have_v6 = ::bind(v6, reinterpret_cast<sockaddr*>(&a6), sizeof a6) == 0 &&
                       ::listen(v6, 4) == 0;
  const std::string abstract_name = "airlock-battery-" + std::to_string(::getpid());
  const int ux = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un au{};
  au.sun_family = AF_UNIX;
  std::memcpy(au.sun_path + 1, abstract_name.data(), abstract_name.size());
  ASSERT_EQ(::bind(ux, reinterpret_cast<sockaddr*>(&au),
                   offsetof(sockaddr_un, sun_path) + 1 + abstract_name.size()), 0);
  ASSERT_EQ(::listen(ux, 4), 0);

  // Documentation addresses (RFC 5737): the namespace has no route, so nothing is sent.
  auto o = run(config(), "probe connect 127.0.0.1 " + port + "; probe connect ::1 " + port +
                             "; probe udp 192.0.2.53 53; probe udp 127.0.0.53 53; "
                             "probe abstract " + abstract_name + "; ip route; ip -6 route; "
                             "cat /etc/resolv.conf; nslookup example.com 2>&1 | tail -1");
  ::close(v4), ::close(v6), ::close(ux);
  EXPECT_TRUE(o.has("connect(127.0.0.1 port " + port + "): DENIED ECONNREFUSED")) << o.output;
  if (have_v6) {
    EXPECT_TRUE(o.has("connect(::1 port " + port + "): DENIED ECONNREFUSED")) << o.output;
  }
  EXPECT_TRUE(o.has("sendto(udp 192.0.2.53:53): DENIED ENETUNREACH")) << o.output;
  EXPECT_TRUE(o.has("connect(abstract unix socket): DENIED ECONNREFUSED")) << o.output;
  EXPECT_TRUE(o.has("can't open '/etc/resolv.conf'")) << o.output;
  EXPECT_FALSE(o.has("default")) << "a route out exists\n" << o.output;
}

TEST_F(Sandbox, FilesOutsideTheRootAndWorkspaceAreUnreachable) {
  TempDir outside, ws;
  const std::string canary = outside.path + "/canary";
  std::ofstream(canary) << "HOST-CANARY-CONTENT";
  fs::create_symlink(canary, ws.path + "/escape-file");
  fs::create_symlink("/", ws.path + "/escape-root");
  fs::create_symlink("../../../../../../" + canary, ws.path + "/escape-relative");
  const std::string script =
      "cat " + canary + "; cat /workspace/escape-file; cat /workspace/escape-relative; "
      "cat /workspace/escape-root" + canary + "; " + kFindOutsideProcAndDev + "-name canary -print; "
      "touch /x; touch /bin/x; echo y > /etc/passwd; mkdir /dev/x; "
      "echo written > /workspace/out && echo tmp > /tmp/t && cat /tmp/t";
  for (const std::string& image : {std::string(), std::string("host")}) {
    auto o = run(config("", image), script, ws.path);
    EXPECT_EQ(o.code, 0) << image << "\n" << o.output;
    EXPECT_FALSE(o.has("HOST-CANARY-CONTENT")) << image << "\n" << o.output;
    EXPECT_GE(count_lines_with(o.output, "Read-only file system"), 4u) << image << "\n" << o.output;
    EXPECT_TRUE(o.has("tmp\n")) << o.output;
    std::ifstream out(ws.path + "/out");
    std::string line;
    std::getline(out, line);
    EXPECT_EQ(line, "written") << image;
    fs::remove(ws.path + "/out");
  }
  // The host image leaves out the host's secrets and homes.
  auto o = run(config("", "host"), "ls /etc/shadow /root /home /var 2>&1; cat /etc/shadow");
  EXPECT_FALSE(o.has("root:")) << o.output;
  EXPECT_EQ(count_lines_with(o.output, "No such file or directory"), 5u) << o.output;
}

TEST_F(Sandbox, AnotherRunsWorkspaceIsInvisible) {
  TempDir ws_a, ws_b;
  std::ofstream(ws_a.path + "/their-file") << "RUN-A-PRIVATE";
  const std::string cfg = config();
  Process a(bin("sandbox-agent"), {"run", "--config", cfg, "--workspace", ws_a.path, "--", "sh",
                                   "-c", "echo started; sleep 30"});
  ASSERT_TRUE(a.wait_output("started", 20s)) << a.output();
  auto b = run(cfg, "cat " + ws_a.path + "/their-file; ls /proc/*/root/workspace 2>&1; " +
                    kFindOutsideProcAndDev + "-name their-file -print; ps -o pid,args", ws_b.path);
  a.signal(SIGTERM);
  EXPECT_EQ(a.wait(20s), 128 + SIGTERM) << a.output();
  EXPECT_FALSE(b.has("RUN-A-PRIVATE")) << b.output;
  EXPECT_TRUE(b.has(ws_a.path + "/their-file': No such file or directory")) << b.output;
  // find prints what it finds on a line of its own.
  EXPECT_FALSE(b.has("\n/workspace/their-file\n")) << b.output;
  EXPECT_FALSE(b.has("sleep 30")) << b.output;
}

TEST_F(Sandbox, SetuidBinaryGainsNothing) {
  auto o = run(config(), "ls -l /bin/probe-suid; probe-suid caps");
  EXPECT_TRUE(o.has("-rwsr-xr-x")) << "the image keeps the setuid bit\n" << o.output;
  EXPECT_TRUE(o.has("CapEff:\t0000000000000000")) << o.output;
  EXPECT_TRUE(o.has("CapPrm:\t0000000000000000")) << o.output;
}

TEST_F(Sandbox, ForkBombIsHeldByThePidsLimit) {
  auto o = run(config("  resources:\n    pids: 40\n    wall_time: 20s\n"),
               "bomb() { bomb | bomb & }; bomb; sleep 2; echo survived");
  EXPECT_GT(o.num("pids_refused"), 0) << o.output;
  EXPECT_TRUE(o.has("pids limit of 40 reached")) << o.output;
  EXPECT_EQ(o.str("limit"), "pids") << o.output;
  // Nothing of the run is left: its cgroup is gone.
  std::istringstream dirs(o.str("cgroup"));
  std::string word;
  dirs >> word >> word;  // "cgroup", "v1"/"v2"
  for (std::string d; dirs >> d;) {
    if (d.front() == '/') {
      EXPECT_FALSE(fs::exists(d)) << d;
    }
  }
}

TEST_F(Sandbox, LeftoversOfAKilledAgentAreRemovedByTheNextRun) {
  TempDir runtime;
  ::setenv("TMPDIR", runtime.path.c_str(), 1);
  auto first = run(config(), "true");
  ASSERT_EQ(first.code, 0) << first.output;
  // A PID that was alive a moment ago and is gone now, as an agent killed with SIGKILL.
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  std::vector<std::string> planted;
  std::istringstream dirs(first.str("cgroup"));
  std::string word;
  dirs >> word >> word;  // "cgroup", "v1"/"v2"
  for (std::string d; dirs >> d;) {
    if (d.front() != '/') continue;
    const std::string stale = fs::path(d).parent_path().string() + "/airlock-battery-" +
                              std::to_string(gone) + "-0";
    ASSERT_TRUE(fs::create_directory(stale)) << stale;
    planted.push_back(stale);
  }
  // A live agent's cgroup is not touched (this test process's PID stands for one).
  const std::string alive = fs::path(planted.front()).parent_path().string() +
                            "/airlock-battery-" + std::to_string(::getpid()) + "-0";
  ASSERT_TRUE(fs::create_directory(alive)) << alive;
  // An /etc copy whose build its agent abandoned an hour ago goes; one being built now stays.
  const std::string dir = runtime.path + "/airlock-sandbox-0";
  const std::string abandoned = dir + "/etc-tmp-abandoned", building = dir + "/etc-tmp-building";
  ASSERT_TRUE(fs::create_directories(abandoned + "/ssl"));
  std::ofstream(abandoned + "/passwd") << "root:x:0:0::/:/bin/sh\n";
  const timespec hour_ago[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, abandoned.c_str(), hour_ago, 0), 0);
  ASSERT_TRUE(fs::create_directory(building));
  planted.push_back(abandoned);
  auto second = run(config(), "true");
  ::unsetenv("TMPDIR");
  EXPECT_EQ(second.code, 0) << second.output;
  for (const auto& p : planted) EXPECT_FALSE(fs::exists(p)) << p;
  EXPECT_TRUE(fs::exists(alive)) << alive;
  EXPECT_TRUE(fs::exists(building)) << building;
  ::rmdir(alive.c_str());
  EXPECT_TRUE(second.has("removed " + std::to_string(planted.size()) + " leftover(s)")) << second.output;
}

// Every run mounts its new root on root/ in one directory of the user's,
// $TMPDIR/airlock-sandbox-UID, inside its own mount namespace: runs leave nothing behind there,
// and a directory that someone else could enter (and so swap what is in it while a root is
// built) is refused.
TEST_F(Sandbox, RunsMountTheirRootOnAPrivateDirectoryAndLeaveNothingBehind) {
  TempDir runtime;
  ::setenv("TMPDIR", runtime.path.c_str(), 1);
  auto first = run(config(), "echo one > /workspace/x");
  auto second = run(config(), "true");
  const std::string dir = runtime.path + "/airlock-sandbox-0";
  auto list = [](const std::string& d) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(d, ec)) names.push_back(e.path().filename());
    return names;
  };
  const auto top = list(runtime.path), inside = list(dir), in_root = list(dir + "/root");
  struct stat st {}, root_st {};
  ::lstat(dir.c_str(), &st);
  ::lstat((dir + "/root").c_str(), &root_st);
  ::chmod(dir.c_str(), 0777);
  auto refused = run(config(), "echo ran");
  ::unsetenv("TMPDIR");
  EXPECT_EQ(first.code, 0) << first.output;
  EXPECT_EQ(second.code, 0) << second.output;
  EXPECT_EQ(top, std::vector<std::string>{"airlock-sandbox-0"});
  EXPECT_EQ(inside, std::vector<std::string>{"root"});
  EXPECT_TRUE(in_root.empty());
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(root_st.st_mode & 0777, 0700u);
  EXPECT_EQ(refused.code, 125) << refused.output;
  EXPECT_FALSE(refused.has("ran")) << refused.output;
  EXPECT_TRUE(refused.has(dir + " is not a directory private to uid 0")) << refused.output;
}

// image: host binds a copy of the /etc allow-list, kept in the agent's directory and made
// again whenever an entry changes on the host or the copy is damaged. The host's /etc/passwd
// is replaced here, in a mount namespace of the test's own, by a file the test edits.
TEST_F(Sandbox, HostEtcIsACopyThatFollowsTheHost) {
  TempDir runtime, d;
  ::setenv("TMPDIR", runtime.path.c_str(), 1);
  const std::string passwd = d.path + "/passwd";
  std::ofstream(passwd) << "root:x:0:0:root:/root:/bin/sh\nfirst:x:1000:1000::/:/bin/sh\n";
  const std::string cfg = config("", "host");
  auto run_host = [&](const std::string& script) {
    return run_program("/usr/bin/unshare",
                       {"-m", "sh", "-c", "mount --bind \"$0\" /etc/passwd && exec \"$@\"", passwd,
                        bin("sandbox-agent"), "run", "--config", cfg, "--", "sh", "-c", script});
  };
  const std::string cache = runtime.path + "/airlock-sandbox-0";
  auto copies = [&] {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(cache)) {
      if (e.path().filename().string().rfind("etc-", 0) == 0) names.push_back(e.path());
    }
    return names;
  };
  auto first = run_host("cut -d: -f1 /etc/passwd; ls /etc/ssl; ls -d /etc/ssl/private 2>&1; true");
  const auto after_first = copies();
  auto again = run_host("cut -d: -f1 /etc/passwd");
  const auto after_again = copies();
  std::ofstream(passwd, std::ios::app) << "second:x:1001:1001::/:/bin/sh\n";
  auto edited = run_host("cut -d: -f1 /etc/passwd");
  // Something removes a file from the copy in use (a /tmp cleaner, say).
  const auto in_use = copies();
  std::string removed;
  for (const auto& c : in_use) {
    if (fs::exists(c + "/group")) fs::remove(removed = c + "/group");
  }
  auto repaired = run_host("cut -d: -f1 /etc/group | head -1");
  ::unsetenv("TMPDIR");

  ASSERT_EQ(first.first, 0) << first.second;
  EXPECT_NE(first.second.find("first\n"), std::string::npos) << first.second;
  EXPECT_NE(first.second.find("certs\nopenssl.cnf\n"), std::string::npos) << first.second;
  EXPECT_NE(first.second.find("cannot access '/etc/ssl/private'"), std::string::npos)
      << "TLS private keys must stay out\n" << first.second;
  ASSERT_EQ(after_first.size(), 1u);
  EXPECT_EQ(after_again, after_first) << "an unchanged /etc is not copied again";
  EXPECT_EQ(again.first, 0) << again.second;
  EXPECT_EQ(edited.first, 0) << edited.second;
  EXPECT_NE(edited.second.find("first\nsecond\n"), std::string::npos) << edited.second;
  ASSERT_FALSE(removed.empty());
  EXPECT_EQ(repaired.first, 0) << repaired.second;
  EXPECT_EQ(repaired.second, "root\n") << repaired.second;
}

TEST_F(Sandbox, MemoryBombIsKilledWithAClearError) {
  auto o = run(config("  resources:\n    memory: 48Mi\n"), "probe alloc 512");
  EXPECT_EQ(o.code, 128 + SIGKILL) << o.output;
  EXPECT_EQ(o.str("limit"), "memory") << o.output;
  EXPECT_TRUE(o.has("memory limit of 48Mi exceeded")) << o.output;
  EXPECT_FALSE(o.has("allocated 512 MiB")) << o.output;
}

TEST_F(Sandbox, CpuBurnIsThrottledAndKilledAtTheWallTime) {
  auto o = run(config("  resources:\n    cpu: 100m\n    wall_time: 1500ms\n"),
               "while :; do :; done");
  EXPECT_EQ(o.code, 124) << o.output;
  EXPECT_EQ(o.str("limit"), "wall_time") << o.output;
  EXPECT_TRUE(o.has("wall-time limit of 1500 ms exceeded")) << o.output;
  EXPECT_GT(o.num("cpu_throttled"), 0) << o.output;
}

TEST_F(Sandbox, OutputIsCappedPerStreamWithAMarker) {
  auto o = run(config("  resources:\n    output_limit: 1KiB\n"),
               "yes stdout-line | head -c 100000; yes stderr-line | head -c 50 >&2");
  EXPECT_EQ(o.code, 0) << o.output;
  EXPECT_TRUE(o.has("[airlock: output truncated at 1Ki (stdout)")) << o.output.substr(0, 300);
  EXPECT_EQ(o.num("stdout_bytes"), 100000);
  EXPECT_TRUE(o.report.at("stdout_truncated").as_bool());
  EXPECT_FALSE(o.report.at("stderr_truncated").as_bool());
  // 85 whole 12-byte lines fit in 1 KiB, then 4 bytes of the next.
  EXPECT_EQ(count_lines_with(o.output, "stdout-line"), 1024u / 12) << o.output.size();
  EXPECT_EQ(o.str("limit"), "output");
}

TEST_F(Sandbox, CredentialArrivesAsEnvAndNeverLeavesInOutput) {
  const std::string value = "sk-live-" + std::to_string(::getpid()) + "-f00dfeedcafe";
  std::ofstream(dir_.path + "/api-key") << value << "\n";
  const std::string cfg = config("  credentials:\n    - secret: my-api-key\n      env_var: API_KEY\n",
                                 "", "secrets:\n  - name: my-api-key\n    from: file:" +
                                         dir_.path + "/api-key\n");
  auto o = run(cfg, "[ \"$API_KEY\" = '" + value + "' ] && echo credential-arrived; "
                    "echo $API_KEY; printf %s \"$API_KEY\" | base64; echo $API_KEY >&2; "
                    "printf %s \"$API_KEY\" | od -An -tx1 | tr -d ' \\n'; echo");
  EXPECT_EQ(o.code, 0) << o.output;
  EXPECT_TRUE(o.has("credential-arrived")) << o.output;
  EXPECT_FALSE(o.has(value)) << o.output;
  EXPECT_EQ(count_lines_with(o.output, "[REDACTED:my-api-key]"), 4u) << o.output;
  EXPECT_EQ(o.report.at("redacted").as_object().at("my-api-key").to_number<int64_t>(), 4);
  // The value never reached the sandbox's script text either: it is only in the environment.
  EXPECT_FALSE(o.has("sk-live-")) << o.output;
}

TEST_F(Sandbox, LayeredImagesRunFromAnArchiveAndFromTheStore) {
  TempDir work;
  const std::string make = std::string(AIRLOCK_SOURCE_DIR) + "/test/sandbox/make_images.sh";
  auto [made, made_out] = run_program("/bin/bash", {make, work.path, image_->path});
  ASSERT_EQ(made, 0) << made_out;
  const std::string store = dir_.path + "/images";
  auto [imported, import_out] = run_program(
      bin("sandbox-agent"), {"image", "import", work.path + "/docker-save.tar", "--tag",
                             "battery/tools:1", "--image-store", store});
  ASSERT_EQ(imported, 0) << import_out;
  EXPECT_NE(import_out.find("battery/tools:1 sha256:"), std::string::npos) << import_out;
  const std::string script = "ls /data /opq; cat /added.txt; probe caps | grep CapEff";
  for (const std::string& image : {std::string("battery/tools:1"), work.path + "/oci-archive.tar"}) {
    auto o = run(config("", image), script);
    EXPECT_EQ(o.code, 0) << image << "\n" << o.output;
    EXPECT_TRUE(o.has("keep.txt")) << o.output;
    EXPECT_FALSE(o.has("gone.txt")) << o.output;
    EXPECT_FALSE(o.has("old.txt")) << o.output;
    EXPECT_TRUE(o.has("new.txt")) << o.output;
    EXPECT_TRUE(o.has("added\n")) << o.output;
    EXPECT_TRUE(o.has("CapEff:\t0000000000000000")) << o.output;
  }
}

// Image contents are parsed by sandbox-agent-unpack, never by the agent that holds the
// credentials: the running agent has neither libarchive nor OpenSSL mapped, and without the
// helper next to it an import fails and says what is missing.
// image: host copies the small regular files of the /etc allow-list into the root and binds
// the rest: a file over the copy limit (256 KiB; here a 300 KiB /etc/mime.types, put in place
// in a mount namespace of the test's own) still arrives whole, as a read-only bind; a small
// one arrives as a copy with the host's content; neither can be written.
TEST_F(Sandbox, HostEtcFilesArriveWholeCopiedOrBound) {
  TempDir d;
  std::string big;
  for (int i = 0; big.size() < 300 * 1024; ++i) big += "application/x-airlock-" + std::to_string(i) + " ext\n";
  std::ofstream(d.path + "/mime.types") << big;
  const std::string cfg = config("", "host");
  auto [code, output] = run_program(
      "/usr/bin/unshare",
      {"-m", "sh", "-c", "mount --bind \"$0/mime.types\" /etc/mime.types && exec \"$@\"", d.path,
       bin("sandbox-agent"), "run", "--config", cfg, "--", "sh", "-c",
       "wc -c < /etc/mime.types; md5sum < /etc/mime.types; md5sum < /etc/passwd; "
       "grep -c ' /etc/mime.types ' /proc/self/mountinfo; "
       "grep -c ' /etc/passwd ' /proc/self/mountinfo; "
       "(echo x >> /etc/mime.types) 2>&1; (echo x >> /etc/passwd) 2>&1; true"});
  ASSERT_EQ(code, 0) << output;
  auto md5 = [](const std::string& file) {
    auto [c, out] = run_program("/bin/sh", {"-c", "md5sum < \"$0\"", file});
    return out;
  };
  std::istringstream lines(output);
  std::vector<std::string> l;
  for (std::string line; std::getline(lines, line);) l.push_back(line);
  ASSERT_GE(l.size(), 7u) << output;
  EXPECT_EQ(l[0], std::to_string(big.size())) << output;
  EXPECT_EQ(l[1] + "\n", md5(d.path + "/mime.types")) << output;
  EXPECT_EQ(l[2] + "\n", md5("/etc/passwd")) << output;
  EXPECT_EQ(l[3], "1") << "the large file is a bind mount\n" << output;
  EXPECT_EQ(l[4], "0") << "the small file is a copy\n" << output;
  EXPECT_NE(l[5].find("Read-only file system"), std::string::npos) << output;
  EXPECT_NE(l[6].find("Read-only file system"), std::string::npos) << output;
}

TEST_F(Sandbox, TheAgentParsesNoImageItselfAndLinksNoArchiveOrTlsLibrary) {
  const std::string cfg = config();
  Process p(bin("sandbox-agent"), {"run", "--config", cfg, "--", "sh", "-c", "echo started; sleep 5"});
  ASSERT_TRUE(p.wait_output("started", 10s)) << p.output();
  std::ifstream maps("/proc/" + std::to_string(p.pid()) + "/maps");
  std::stringstream text;
  text << maps.rdbuf();
  ASSERT_NE(text.str().find("libc.so"), std::string::npos) << text.str();
  for (const char* lib : {"libarchive", "libcrypto", "libssl", "libxml2"}) {
    EXPECT_EQ(text.str().find(lib), std::string::npos) << lib << " is mapped in sandbox-agent";
  }
  p.signal(SIGTERM);
  p.wait(10s);

  TempDir lone, work;
  fs::copy_file(bin("sandbox-agent"), lone.path + "/sandbox-agent");
  const std::string make = std::string(AIRLOCK_SOURCE_DIR) + "/test/sandbox/make_images.sh";
  auto [made, made_out] = run_program("/bin/bash", {make, work.path, image_->path});
  ASSERT_EQ(made, 0) << made_out;
  auto [code, out] = run_program(lone.path + "/sandbox-agent",
                                 {"image", "import", work.path + "/docker-save.tar", "--tag",
                                  "battery/tools:1", "--image-store", dir_.path + "/images"});
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("unpacking needs " + lone.path + "/sandbox-agent-unpack, installed "
                     "next to sandbox-agent"), std::string::npos) << out;
}

// The unpacker, run as root, keeps only chown, dac_override, fowner and fsetid (no ptrace, no
// admin), none inheritable, under no_new_privs. A FIFO as the image holds it open for reading
// while its status is read.
TEST_F(Sandbox, TheImageUnpackerKeepsOnlyTheCapabilitiesExtractionNeeds) {
  TempDir d;
  const std::string fifo = d.path + "/image.tar";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  fs::create_directories(d.path + "/store");
  Process helper(bin("sandbox-agent-unpack"), {fifo, d.path + "/store"});
  std::string status;
  ASSERT_TRUE(eventually([&] {
    std::ifstream in("/proc/" + std::to_string(helper.pid()) + "/status");
    std::stringstream ss;
    ss << in.rdbuf();
    status = ss.str();
    return status.find("NoNewPrivs:\t1") != std::string::npos;
  }, 10s)) << status;
  EXPECT_NE(status.find("CapEff:\t000000000000001b"), std::string::npos) << status;
  EXPECT_NE(status.find("CapPrm:\t000000000000001b"), std::string::npos) << status;
  EXPECT_NE(status.find("CapBnd:\t000000000000001b"), std::string::npos) << status;
  EXPECT_NE(status.find("CapInh:\t0000000000000000"), std::string::npos) << status;
  EXPECT_NE(status.find("CapAmb:\t0000000000000000"), std::string::npos) << status;
  // An empty "archive": the helper fails, says why, and exits 1.
  const int w = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(w, 0);
  ::close(w);
  EXPECT_EQ(helper.wait(10s), 1) << helper.output();
  EXPECT_NE(helper.output().find(fifo), std::string::npos) << helper.output();
}

TEST_F(Sandbox, ExitStatusSignalsAndSetupErrors) {
  EXPECT_EQ(run(config(), "exit 7").code, 7);
  auto missing = run_program(bin("sandbox-agent"), {"run", "--config", config(), "--",
                                                    "no-such-tool"});
  EXPECT_EQ(missing.first, 127) << missing.second;
  EXPECT_NE(missing.second.find("execvp(no-such-tool): No such file or directory"),
            std::string::npos) << missing.second;
  auto bad_image = run_program(bin("sandbox-agent"),
                               {"run", "--config", config("", "my-registry/tool-executor:latest"),
                                "--image-store", dir_.path + "/images", "--", "true"});
  EXPECT_EQ(bad_image.first, 2);
  EXPECT_NE(bad_image.second.find("sandbox-agent image import FILE --tag "
                                   "my-registry/tool-executor:latest"),
            std::string::npos) << bad_image.second;
  // SIGTERM to the agent reaches the tool (its trap runs) and the run ends with its status.
  const std::string cfg = config();
  Process p(bin("sandbox-agent"), {"run", "--config", cfg, "--", "sh", "-c",
                                   "trap 'echo got-term; exit 3' TERM; echo ready; "
                                   "while :; do sleep 1; done"});
  ASSERT_TRUE(p.wait_output("ready", 20s)) << p.output();
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(20s), 3) << p.output();
  EXPECT_NE(p.output().find("got-term"), std::string::npos) << p.output();
  // SIGINT and SIGHUP (Ctrl-C, a closed terminal) stop the run the same way.
  for (int sig : {SIGINT, SIGHUP}) {
    Process q(bin("sandbox-agent"), {"run", "--config", cfg, "--", "sh", "-c",
                                     "trap 'echo got-term; exit 4' TERM; echo ready; "
                                     "while :; do sleep 1; done"});
    ASSERT_TRUE(q.wait_output("ready", 20s)) << q.output();
    q.signal(sig);
    EXPECT_EQ(q.wait(20s), 4) << sig << "\n" << q.output();
    EXPECT_NE(q.output().find("got-term"), std::string::npos) << q.output();
  }
}

TEST_F(Sandbox, SetupFailuresNameTheSyscallAndTheFix) {
  // Started as a user who may not create cgroups: refused before the tool starts, with the
  // syscall, path and errno, and what to do.
  const auto [agent, cfg] = agent_for_another_user();
  auto [code, output] = run_program("/usr/bin/setpriv",
                                    {"--reuid=65534", "--regid=65534", "--clear-groups", agent,
                                     "run", "--config", cfg, "--", "true"});
  EXPECT_EQ(code, 125) << output;
  EXPECT_NE(output.find("sandbox set-up failed: cgroup: mkdir("), std::string::npos) << output;
  EXPECT_NE(output.find("Permission denied (errno 13)"), std::string::npos) << output;
  EXPECT_NE(output.find("run it as root, or delegate its cgroup"), std::string::npos) << output;
}

// Started by a user (nobody, 65534 here) whose cgroups were delegated to it, the agent runs the
// tool as root of a user namespace mapped to that user — root inside, the user's files outside
// — under cgroups it makes below the delegated ones. (The agent is not dumpable; its child is,
// only until the agent has written the id maps, which it could not do otherwise.)
TEST_F(Sandbox, AnAgentStartedByAUserRunsInTheCgroupsDelegatedToIt) {
  const auto roots = sandbox::CgroupRoots::detect();
  if (!roots.v2.empty()) GTEST_SKIP() << "written for the v1 hierarchies this machine has";
  ASSERT_TRUE(roots.usable()) << roots.why_unusable;
  const std::string name = "delegated-to-nobody-" + std::to_string(::getpid());
  std::vector<std::string> delegated;
  for (const auto* base : {&roots.v1_memory, &roots.v1_cpu, &roots.v1_pids}) {
    delegated.push_back(*base + "/" + name);
    ASSERT_EQ(::mkdir(delegated.back().c_str(), 0755), 0) << delegated.back();
    ASSERT_EQ(::chown(delegated.back().c_str(), 65534, 65534), 0);
  }
  const auto [agent, cfg] = agent_for_another_user();
  TempDir ws;
  ::chmod(ws.path.c_str(), 0777);
  const std::string report = ws.path + "/report.json";
  // The shell joins the delegated cgroups, then becomes the agent as nobody.
  const std::string script =
      "for d in \"$@\"; do echo $$ > \"$d/cgroup.procs\" || exit 99; done; "
      "exec setpriv --reuid=65534 --regid=65534 --clear-groups " + agent + " run --config " +
      cfg + " --workspace " + ws.path + " --report " + report +
      " -- sh -c 'echo uid=$(id -u); echo made > /workspace/made'";
  std::vector<std::string> args = {"-c", script, "sh"};
  args.insert(args.end(), delegated.begin(), delegated.end());
  auto [code, output] = run_program("/bin/sh", args);
  auto o = outcome(code, output, report);
  EXPECT_EQ(o.code, 0) << o.output;
  EXPECT_TRUE(o.has("uid=0")) << o.output;
  struct stat st {};
  ASSERT_EQ(::stat((ws.path + "/made").c_str(), &st), 0) << o.output;
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
  ASSERT_FALSE(o.report.empty()) << o.output;
  EXPECT_NE(o.str("cgroup").find(delegated[0] + "/airlock-battery-"), std::string::npos)
      << o.str("cgroup");
  EXPECT_GT(o.num("memory_peak"), 0) << "the run was not charged to its memory cgroup";
  for (const auto& d : delegated) {
    EXPECT_TRUE(eventually([&] { return ::rmdir(d.c_str()) == 0; }, 5s)) << d;
  }
}


// --- Egress: the proxy and its allowlist ----------------------------------------------------
//
// A private API (test/sandbox/upstream_server.mjs: HTTPS and HTTP) on 127.0.0.2, and a DNS
// server the test controls (Debian's dnsmasq on a loopback address of its own) answering
//   api.internal.test    A 127.0.0.2        (allowed: "*.internal.test" and "127.0.0.2")
//   rebind.internal.test A 127.0.0.1        (an allowed name rebound to loopback)
//   meta.internal.test   A 169.254.169.254  (… and to the cloud metadata address)
// sandbox-agent runs in a mount namespace of the test's own whose /etc/resolv.conf names that
// server (and whose /etc/hosts is empty), so the proxy's getaddrinfo asks it. The tool is
// curl / openssl / bash from the host image.
class Egress : public Sandbox {
 protected:
  void SetUp() override {
    Sandbox::SetUp();
    if (IsSkipped()) return;
    certs_ = tls::ensure_self_managed_certs(certs_dir_.path, {"api.internal.test"});
    fs::copy_file(certs_.ca_file, ws_.path + "/ca.pem");
    // A loopback address per test process, so that parallel tests do not share a resolver.
    const unsigned pid = static_cast<unsigned>(::getpid());
    dns_ = "127." + std::to_string(1 + pid % 250) + "." + std::to_string(pid / 250 % 250) + ".53";
    dns_server_ = std::make_unique<Process>(
        "/usr/sbin/dnsmasq",
        std::vector<std::string>{"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                                 "--no-hosts", "--bind-interfaces", "--listen-address=" + dns_,
                                 "--port=53", "--log-facility=-", "--pid-file=",
                                 "--address=/api.internal.test/127.0.0.2",
                                 "--address=/rebind.internal.test/127.0.0.1",
                                 "--address=/meta.internal.test/169.254.169.254"});
    ASSERT_TRUE(dns_server_->wait_output("started", 20s)) << dns_server_->output();
    std::ofstream(dir_.path + "/resolv.conf") << "nameserver " << dns_ << "\noptions timeout:2\n";
    std::ofstream(dir_.path + "/hosts") << "127.0.0.1 localhost\n";
    log_ = dir_.path + "/upstream.log";
    server_ = std::make_unique<Process>(
        "/usr/bin/env", std::vector<std::string>{"node", std::string(AIRLOCK_SOURCE_DIR) +
                                                      "/test/sandbox/upstream_server.mjs",
                                                  "127.0.0.2", certs_.cert_file, certs_.key_file,
                                                  log_});
    ASSERT_TRUE(server_->wait_output("listening ", 20s)) << server_->output();
    std::istringstream in(server_->output().substr(server_->output().find("listening ") + 10));
    in >> https_port_ >> http_port_;
    ASSERT_FALSE(https_port_.empty());
  }

  // Runs `script` in the host image with the allowlist, names resolved by the test's server.
  Outcome egress(const std::string& script, const std::string& extra = "",
                 const std::string& top = "") {
    auto [code, output] = run_program("/usr/bin/unshare", egress_args(script, extra, top));
    return outcome(code, output, report_path());
  }
  // The arguments of /usr/bin/unshare for that run.
  std::vector<std::string> egress_args(const std::string& script, const std::string& extra,
                                       const std::string& top) {
    const std::string cfg = config("  network:\n    allowed_outbound: [\"*.internal.test\", "
                                   "\"127.0.0.2\"]\n" + extra, "host", top);
    return {"-m", "sh", "-c",
            "mount --bind \"$0/hosts\" /etc/hosts && mount --bind \"$0/resolv.conf\" "
            "/etc/resolv.conf && exec \"$@\"",
            dir_.path, bin("sandbox-agent"), "run", "--config", cfg, "--report", report_path(),
            "--workspace", ws_.path, "--", "bash", "-c", script};
  }
  std::string report_path() const { return dir_.path + "/egress-report.json"; }
  std::string upstream_log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  TempDir certs_dir_, ws_;
  tls::ServerCertFiles certs_;
  std::string log_, https_port_, http_port_, dns_;
  std::unique_ptr<Process> server_, dns_server_;
};

TEST_F(Egress, AnAllowedHostIsReachableAndTheCredentialArrives) {
  const std::string key = "tok-" + std::to_string(::getpid()) + "-8c1d2e3f4a5b";
  std::ofstream(dir_.path + "/key") << key;
  auto o = egress(
      "curl -sS --cacert ca.pem -H \"Authorization: Bearer $API_KEY\" "
      "https://api.internal.test:" + https_port_ + "/tls; "
      "curl -sS -d payload-body http://api.internal.test:" + http_port_ + "/plain; "
      // A listed IP literal through CONNECT: a ClientHello without SNI is accepted.
      "openssl s_client -proxy 127.0.0.1:3128 -connect 127.0.0.2:" + https_port_ +
      " -noservername </dev/null 2>/dev/null | grep -c 'BEGIN CERTIFICATE'",
      "  credentials:\n    - secret: api-key\n      env_var: API_KEY\n",
      "secrets:\n  - name: api-key\n    from: file:" + dir_.path + "/key\n");
  EXPECT_EQ(o.code, 0) << o.output;
  const std::string seen = upstream_log();
  // The credential reached the private API over TLS; the plain request went in origin form
  // with its body.
  EXPECT_NE(seen.find("\"url\":\"/tls\",\"host\":\"api.internal.test:" + https_port_ +
                      "\",\"authorization\":\"Bearer " + key + "\""),
            std::string::npos) << seen;
  EXPECT_NE(seen.find("\"method\":\"POST\",\"url\":\"/plain\""), std::string::npos) << seen;
  EXPECT_NE(seen.find("\"body\":\"payload-body\""), std::string::npos) << seen;
  // The API echoed it; the run's output carries the marker instead.
  EXPECT_FALSE(o.has(key)) << o.output;
  EXPECT_TRUE(o.has("Bearer [REDACTED:api-key]")) << o.output;
  EXPECT_TRUE(o.has("\n1\n")) << "the certificate came back through the IP-literal tunnel\n"
                               << o.output;
  EXPECT_EQ(o.num("egress_allowed"), 3) << o.output;
  EXPECT_EQ(o.num("egress_denied"), 0) << o.output;
}

TEST_F(Egress, EveryOtherWayOutIsRefusedAndLogged) {
  const std::string api = "https://api.internal.test:" + https_port_;
  auto o = egress(
      // Not listed: a name, the apex of "*.internal.test", IPv4 and IPv6 literals.
      "curl -sS https://evil.test/ ; curl -sS https://internal.test/ ; "
      "curl -sS https://127.0.0.3:" + https_port_ + "/ ; curl -sS 'https://[::1]:" + https_port_ +
      "/' ; "
      // Allowed names rebound to loopback and to the metadata address.
      "curl -sS https://rebind.internal.test:" + https_port_ + "/ ; "
      "curl -sS http://meta.internal.test/latest/meta-data/ ; "
      // The proxy itself, by CONNECT and by absolute URI.
      "curl -sS https://127.0.0.1:3128/ ; curl -sS http://127.0.0.1:3128/ ; "
      // A Host header naming another host than the URL.
      "curl -sS -H 'Host: evil.test' http://api.internal.test:" + http_port_ + "/ ; "
      // A ClientHello whose SNI is not the CONNECT host.
      "openssl s_client -proxy 127.0.0.1:3128 -connect api.internal.test:" + https_port_ +
      " -servername evil.test -CAfile ca.pem </dev/null 2>&1 | grep -c 'BEGIN CERTIFICATE' ; "
      // A CONNECT tunnel carrying plain text instead of TLS.
      // (In subshells: the proxy may close while printf still writes, and SIGPIPE ends only
      // the subshell.)
      "(exec 3<>/dev/tcp/127.0.0.1/3128; printf 'CONNECT api.internal.test:" + http_port_ +
      " HTTP/1.1\\r\\n\\r\\nGET / HTTP/1.1\\r\\nHost: api.internal.test\\r\\n\\r\\n' >&3; "
      "cat <&3); "
      // Not a proxy request: origin form; a request head over 16 KiB.
      "(exec 3<>/dev/tcp/127.0.0.1/3128; printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3; "
      "head -1 <&3); "
      "curl -sS -o /dev/null -w '%{http_code}\\n' -H \"X-Big: $(head -c 20000 /dev/zero | tr '\\0' a)\" "
      "http://api.internal.test:" + http_port_ + "/ ; "
      // Around the proxy: no resolver, no route.
      "getent hosts api.internal.test || echo no-resolution; "
      "curl -sS --noproxy '*' --max-time 5 http://127.0.0.2:" + http_port_ + "/ ; "
      // And the allowed way still works in the same run.
      "curl -sS --cacert ca.pem " + api + "/ok");
  for (const std::string& refused :
       {std::string("egress denied for 'evil.test': 'evil.test' is not in allowed_outbound"),
        std::string("egress denied for 'internal.test'"),
        "egress denied for '127.0.0.3': the address 127.0.0.3 (port " + https_port_ + ")",
        std::string("egress denied for '::1': the address ::1"),
        std::string("egress denied for 'rebind.internal.test': 'rebind.internal.test' resolved: "
                    "127.0.0.1 is loopback"),
        std::string("egress denied for 'meta.internal.test': 'meta.internal.test' resolved: "
                    "169.254.169.254 is a cloud metadata address"),
        std::string("egress denied for '127.0.0.1': that is the proxy itself"),
        std::string("the Host header 'evil.test' names another host"),
        std::string("the TLS server name (SNI) 'evil.test' differs from the CONNECT host "
                    "'api.internal.test'"),
        std::string("the CONNECT tunnel must carry TLS"),
        std::string("this is an egress proxy: send CONNECT host:port or an absolute http:// URL"),
        std::string("request head over 16384 bytes")}) {
    EXPECT_TRUE(o.has(refused)) << refused << "\n" << o.output;
  }
  EXPECT_EQ(count_lines_with(o.output, "CONNECT tunnel failed, response 403"), 6u) << o.output;
  EXPECT_TRUE(o.has("\n0\n")) << "no certificate came back through a mismatched SNI\n" << o.output;
  EXPECT_TRUE(o.has("no-resolution")) << o.output;
  EXPECT_TRUE(o.has("Couldn't connect to server") || o.has("Network is unreachable") ||
              o.has("Failed to connect")) << o.output;
  EXPECT_TRUE(o.has("\"url\":\"/ok\"")) << o.output;
  EXPECT_TRUE(o.has("HTTP/1.1 400 Bad Request")) << o.output;
  EXPECT_TRUE(o.has("431\n")) << o.output;
  EXPECT_EQ(o.num("egress_denied"), 13) << o.output;
  // Nothing but the final allowed request reached the private API.
  EXPECT_EQ(count_lines_with(upstream_log(), "\"method\""), 1u) << upstream_log();
}

TEST_F(Egress, ARunHoldsAtMost256ProxyConnections) {
  // 256 connections that never send a request head, then one more request.
  auto o = egress("for i in $(seq 256); do exec {f}<>/dev/tcp/127.0.0.1/3128 || exit 9; done; "
                  "curl -sS http://api.internal.test:" + http_port_ + "/");
  EXPECT_TRUE(o.has("airlock egress: too many connections from this run")) << o.output;
  EXPECT_TRUE(o.has("egress denied: connection limit of 256 reached")) << o.output;
  EXPECT_EQ(count_lines_with(upstream_log(), "\"method\""), 0u) << upstream_log();
}

// Every readable mapping of process `pid` (from /proc/PID/maps, read through /proc/PID/mem):
// which of `forms` occur in it, as "form@mapping".
std::vector<std::string> memory_holds(pid_t pid, const std::vector<std::string>& forms) {
  std::vector<std::string> found;
  const std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream maps(dir + "/maps");
  const int mem = ::open((dir + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (mem < 0) return {"cannot open " + dir + "/mem: " + std::strerror(errno)};
  std::string line;
  std::string buf;
  while (std::getline(maps, line)) {
    unsigned long start = 0, end = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &start, &end, perms) != 3 || perms[0] != 'r') continue;
    if (line.find("[vvar]") != std::string::npos || line.find("[vsyscall]") != std::string::npos) continue;
    buf.resize(end - start);
    const ssize_t n = ::pread(mem, buf.data(), buf.size(), static_cast<off_t>(start));
    if (n <= 0) continue;
    const std::string_view region(buf.data(), static_cast<size_t>(n));
    for (const auto& form : forms) {
      if (region.find(form) != std::string_view::npos) found.push_back(form + "@" + line);
    }
  }
  ::close(mem);
  return found;
}

// The processes below `ancestor` (not itself), from /proc/PID/stat's parent field.
std::vector<pid_t> descendants_of(pid_t ancestor) {
  std::map<pid_t, pid_t> parent;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const size_t close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(text.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    parent[std::stoi(name)] = ppid;
  }
  std::vector<pid_t> out;
  for (const auto& [pid, ppid] : parent) {
    for (pid_t p = ppid; p > 1; p = parent.count(p) ? parent[p] : 0) {
      if (p == ancestor) {
        out.push_back(pid);
        break;
      }
    }
  }
  return out;
}

TEST_F(Egress, AHostBoundCredentialIsAddedOutsideAndNeverEntersTheSandbox) {
  const std::string key = "hb-" + std::to_string(::getpid()) + "-5e6f7a8b9c0d1e2f";
  std::ofstream(dir_.path + "/key") << key;
  const std::string extra = "  http_credentials:\n    - host: \"*.internal.test\"\n"
                            "      header: Authorization\n"
                            "      value: \"Bearer ${secret:api-key}\"\n"
                            "      ca_file: " + certs_.ca_file + "\n";
  const std::string top = "secrets:\n  - name: api-key\n    from: file:" + dir_.path + "/key\n";
  const std::string api = "https://api.internal.test:" + https_port_;
  const std::string script =
      // No --cacert: the sandbox trusts its proxy's CA through SSL_CERT_FILE, and through the
      // system bundle when a client ignores the variables.
      "curl -sS " + api + "/injected; "
      "env -u SSL_CERT_FILE -u CURL_CA_BUNDLE -u REQUESTS_CA_BUNDLE curl -sS " + api + "/system-bundle; "
      // The tool's own Authorization is replaced, not sent beside the credential.
      "curl -sS -H 'Authorization: Bearer forged-by-the-tool' " + api + "/replaced; "
      "curl -sS -d posted-body http://api.internal.test:" + http_port_ + "/plain; "
      // A chunked upload; HEAD; two requests on one kept-alive connection.
      "printf 'chunked-%s' body | curl -sS -H 'Transfer-Encoding: chunked' --data-binary @- " +
      api + "/chunked; "
      "curl -sS -I -o /dev/null -w 'head-status=%{http_code}\\n' " + api + "/head; "
      "head -c 3000 /dev/zero | tr '\\0' x | curl -sS -H 'Expect: 100-continue' --data-binary @- " +
      api + "/expect; "
      "curl -sS " + api + "/first " + api + "/second -o /workspace/first.txt -o /workspace/second.txt; "
      // A kept-alive connection used again after the API closed its side of the proxy's
      // connection (within ~1.2 s of idling), then at once; and after the API closed it just
      // as a request came (the proxy sends it again on a new one).
      "python3 -c 'import http.client, ssl, time\n"
      "c = http.client.HTTPSConnection(\"127.0.0.1\", 3128, context=ssl.create_default_context())\n"
      "c.set_tunnel(\"api.internal.test\", " + https_port_ + ")\n"
      "for path, pause in ((\"/ka-first\", 1.6), (\"/ka-after-idle\", 0), (\"/ka-again\", 0),\n"
      "                    (\"/arm-drop\", 0), (\"/after-drop\", 0)):\n"
      "    c.request(\"GET\", path); r = c.getresponse(); r.read()\n"
      "    print(path, r.status, file=open(\"/workspace/keepalive.txt\", \"a\")); time.sleep(pause)\n'; "
      // A host no credential names (an allowed IP literal) gets nothing; a denied one, no
      // connection at all.
      "curl -sS http://127.0.0.2:" + http_port_ + "/other-host; "
      "curl -sS https://meta.internal.test/denied; curl -sS http://evil.test/denied; "
      // A client that trusts only its own CA refuses the proxy's certificate.
      "curl -sS --cacert ca.pem " + api + "/pinned; echo pinned-exit=$?; "
      // Held open for 3 s by the server while the test reads every sandboxed process's memory.
      "curl -sS " + api + "/hold -o /workspace/held.txt -D /workspace/held-headers.txt; "
      // A Host header naming another host than the tunnel's is refused by the proxy.
      "curl -sS -H 'Host: evil.test' " + api + "/wrong-host; "
      "env > /workspace/env.txt; cat /proc/[0-9]*/environ > /workspace/environ.txt 2>/dev/null; "
      "cp /run/airlock/* /workspace/ 2>/dev/null; true";
  Process agent("/usr/bin/unshare", egress_args(script, extra, top));
  ASSERT_TRUE(eventually([&] { return upstream_log().find("\"url\":\"/hold\"") != std::string::npos; },
                         60s)) << agent.output() << upstream_log();
  // The agent process itself holds the value (its proxy sends it); everything below it is the
  // sandbox: its init, bash, curl (waiting for /hold's answer).
  const auto forms = redact::encoded_forms(key);
  const auto sandboxed = descendants_of(agent.pid());
  EXPECT_GE(sandboxed.size(), 3u);
  for (pid_t pid : sandboxed) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(comm, name);
    const auto found = memory_holds(pid, forms);
    EXPECT_TRUE(found.empty()) << "process " << pid << " (" << name << ") holds the value: "
                               << found.front();
  }
  ASSERT_EQ(agent.wait(60s), 0) << agent.output();
  const Outcome o = outcome(0, agent.output(), report_path());
  const std::string seen = upstream_log();
  auto request = [&](const std::string& url) {
    const size_t at = seen.find("\"url\":\"" + url + "\"");
    if (at == std::string::npos) return std::string("(no request)");
    const size_t begin = seen.rfind('\n', at) == std::string::npos ? 0 : seen.rfind('\n', at) + 1;
    return seen.substr(begin, seen.find('\n', at) - begin);
  };
  for (const char* url : {"/injected", "/system-bundle", "/replaced", "/plain", "/hold"}) {
    EXPECT_NE(request(url).find("\"authorization\":\"Bearer " + key + "\""), std::string::npos)
        << url << ": " << request(url);
    EXPECT_NE(request(url).find("\"authorizations\":1"), std::string::npos) << url << ": " << request(url);
  }
  EXPECT_NE(request("/plain").find("\"body\":\"posted-body\""), std::string::npos) << seen;
  EXPECT_NE(request("/chunked").find("\"body\":\"chunked-body\""), std::string::npos) << seen;
  EXPECT_NE(request("/head").find("\"method\":\"HEAD\""), std::string::npos) << seen;
  EXPECT_NE(request("/expect").find("\"body\":\"" + std::string(3000, 'x') + "\""), std::string::npos)
      << request("/expect");
  EXPECT_TRUE(o.has("head-status=200")) << o.output;
  std::ifstream keepalive_file(ws_.path + "/keepalive.txt");
  const std::string keepalive((std::istreambuf_iterator<char>(keepalive_file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(keepalive, "/ka-first 200\n/ka-after-idle 200\n/ka-again 200\n/arm-drop 200\n"
                       "/after-drop 200\n") << o.output;
  for (const char* url : {"/chunked", "/head", "/expect", "/first", "/second", "/ka-after-idle",
                          "/ka-again", "/after-drop"}) {
    EXPECT_NE(request(url).find("\"authorization\":\"Bearer " + key + "\""), std::string::npos)
        << url << ": " << request(url);
  }
  std::ifstream second_file(ws_.path + "/second.txt");
  const std::string second((std::istreambuf_iterator<char>(second_file)), std::istreambuf_iterator<char>());
  EXPECT_NE(second.find("\"url\":\"/second\",\"host\":\"api.internal.test:" + https_port_ +
                        "\",\"authorization\":\"Bearer [REDACTED:api-key]\""),
            std::string::npos) << second;
  EXPECT_NE(request("/other-host").find("\"authorization\":null"), std::string::npos) << seen;
  EXPECT_EQ(request("/pinned"), "(no request)") << seen;
  EXPECT_EQ(request("/denied"), "(no request)") << seen;
  EXPECT_EQ(request("/wrong-host"), "(no request)") << seen;
  // The API's answer echoed the header in a header of its own too: redacted before it entered.
  std::ifstream held_headers_file(ws_.path + "/held-headers.txt");
  const std::string held_headers((std::istreambuf_iterator<char>(held_headers_file)),
                                 std::istreambuf_iterator<char>());
  EXPECT_NE(held_headers.find("X-Seen-Authorization: Bearer [REDACTED:api-key]"), std::string::npos)
      << held_headers;
  for (const char* said : {
           "egress denied for 'evil.test'", "egress denied for 'meta.internal.test'",
           // The pinning client's failure, on both sides.
           "pinned-exit=60", "SSL certificate problem", "did not accept the sandbox CA's certificate",
           "the Host header 'evil.test' names another host than the one this connection is for",
           // The server echoed the header it got; the sandbox received it redacted.
           "Bearer [REDACTED:api-key]"}) {
    EXPECT_TRUE(o.has(said)) << said << "\n" << o.output;
  }
  // No form of the value anywhere the sandbox could have written it, its environment included.
  ASSERT_TRUE(fs::exists(ws_.path + "/env.txt"));
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(ws_.path)) {
    if (!e.is_regular_file()) continue;
    ++files;
    std::ifstream in(e.path(), std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const auto& form : forms) EXPECT_EQ(text.find(form), std::string::npos) << e.path() << ": " << form;
  }
  EXPECT_GE(files, 5u);
  std::ifstream env_file(ws_.path + "/env.txt");
  const std::string env((std::istreambuf_iterator<char>(env_file)), std::istreambuf_iterator<char>());
  EXPECT_NE(env.find("SSL_CERT_FILE=/run/airlock/ca-bundle.pem"), std::string::npos) << env;
  EXPECT_NE(env.find("NODE_EXTRA_CA_CERTS=/run/airlock/egress-ca.pem"), std::string::npos) << env;
  // The CA's certificate is in the sandbox; no private key is.
  std::ifstream ca_copy(ws_.path + "/egress-ca.pem");
  const std::string ca_text((std::istreambuf_iterator<char>(ca_copy)), std::istreambuf_iterator<char>());
  EXPECT_NE(ca_text.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(ca_text.find("PRIVATE KEY"), std::string::npos);
  EXPECT_FALSE(o.has(key)) << o.output;
}

TEST_F(Egress, AnUpstreamTheProxyCannotVerifyGetsNoCredential) {
  // No ca_file: the system's CAs, which do not know the test server's.
  std::ofstream(dir_.path + "/key") << "hb-unverified-0123456789abcdef";
  auto o = egress("curl -sS -w '\\nstatus=%{http_code}\\n' https://api.internal.test:" + https_port_ +
                      "/unverified",
                  "  http_credentials:\n    - {host: '*.internal.test', header: Authorization, "
                  "value: 'Bearer ${secret:k}'}\n",
                  "secrets:\n  - {name: k, from: 'file:" + dir_.path + "/key'}\n");
  EXPECT_TRUE(o.has("status=502")) << o.output;
  EXPECT_TRUE(o.has("airlock egress: the certificate of 'api.internal.test' could not be verified "
                    "against the system's CAs")) << o.output;
  EXPECT_EQ(upstream_log().find("/unverified"), std::string::npos) << upstream_log();
}

TEST_F(Sandbox, AnImagesCaBundlesTrustTheEgressCaAndItsSymlinksStayInsideIt) {
  // The busybox image with a CA bundle of its own, a symlink to it (as Alpine has), and a
  // symlink that, followed on the host, would name a file of the host's.
  TempDir image;
  fs::copy(image_->path, image.path, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  fs::create_directories(image.path + "/etc/ssl/certs");
  fs::create_directories(image.path + "/etc/pki/tls/certs");
  std::ofstream(image.path + "/etc/ssl/certs/ca-certificates.crt") << "IMAGE-BUNDLE-MARKER\n";
  fs::create_symlink("/etc/ssl/certs/ca-certificates.crt", image.path + "/etc/ssl/cert.pem");
  std::ofstream(dir_.path + "/host-file.crt") << "HOST-FILE-MARKER\n";
  fs::create_symlink(dir_.path + "/host-file.crt", image.path + "/etc/pki/tls/certs/ca-bundle.crt");
  std::ofstream(dir_.path + "/key") << "hb-image-test-value-0123456789";
  const std::string cfg = config(
      "  network:\n    allowed_outbound: ['*.internal.test']\n"
      "  http_credentials:\n    - {host: '*.internal.test', header: X-Key, value: '${secret:k}'}\n",
      image.path, "secrets:\n  - {name: k, from: 'file:" + dir_.path + "/key'}\n");
  auto o = run(cfg, "cat /etc/ssl/certs/ca-certificates.crt; echo ---; cat /etc/ssl/cert.pem; "
                    "echo ---; cat /run/airlock/*; echo ---; ls /run/airlock; echo SSL_CERT_FILE=$SSL_CERT_FILE");
  ASSERT_EQ(o.code, 0) << o.output;
  // The image's bundle, and the link to it, now end with the sandbox's CA.
  EXPECT_EQ(count_lines_with(o.output, "IMAGE-BUNDLE-MARKER"), 4u) << o.output;  // bundle, link, copies
  EXPECT_GE(count_lines_with(o.output, "BEGIN CERTIFICATE"), 4u) << o.output;
  EXPECT_EQ(o.output.find("HOST-FILE-MARKER"), std::string::npos) << o.output;
  EXPECT_EQ(o.output.find("PRIVATE KEY"), std::string::npos) << o.output;
  EXPECT_TRUE(o.has("SSL_CERT_FILE=/run/airlock/ca-bundle.pem")) << o.output;
}

TEST_F(Sandbox, TheCleanInitAndItsToolEndWithAKilledAgent) {
  // With host-bound credentials the run's init is sandbox-agent-init, exec'd: it must still die
  // with the agent (the parent-death signal survives that exec), and the tool with it.
  std::ofstream(dir_.path + "/key") << "hb-pdeath-0123456789abcdef";
  const std::string marker = "77." + std::to_string(::getpid() % 1000);
  const std::string cfg = config(
      "  network:\n    allowed_outbound: ['*.internal.test']\n"
      "  http_credentials:\n    - {host: '*.internal.test', header: X-Key, value: '${secret:k}'}\n",
      "host", "secrets:\n  - {name: k, from: 'file:" + dir_.path + "/key'}\n");
  Process agent(bin("sandbox-agent"), {"run", "--config", cfg, "--", "sleep", marker});
  auto running = [&](const std::string& pattern) {
    return run_program("/usr/bin/pgrep", {"-f", pattern}).first == 0;
  };
  ASSERT_TRUE(eventually([&] { return running("^sleep " + marker); }, 20s)) << agent.output();
  ASSERT_TRUE(running("^sandbox-agent-init ")) << "the init was not replaced";
  agent.signal(SIGKILL);
  agent.wait(10s);
  EXPECT_TRUE(eventually([&] { return !running("^sleep " + marker); }, 10s))
      << "the tool outlived its agent";
}

TEST_F(Sandbox, WithoutAnAllowlistThereIsNoProxyAndNoNetwork) {
  auto o = run(config("", "host"), "env | grep -ci proxy; curl -sS --max-time 5 http://127.0.0.1:3128/");
  EXPECT_TRUE(o.has("0\n")) << o.output;
  EXPECT_TRUE(o.has("Couldn't connect to server") || o.has("Failed to connect")) << o.output;
}

}  // namespace
}  // namespace airlock::test
