// The cgroup code against directory trees laid out like cgroupfs. This machine's kernel has
// its controllers on cgroup v1 (the e2e battery exercises that for real); the v2 path is
// checked here for what it detects and writes, and cloning into a v2 cgroup against the
// kernel's own unified hierarchy, which it has even without controllers.
#include "sandbox/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <seccomp.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

#include "test/e2e/temp_dir.h"

namespace airlock::sandbox {
namespace {
namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Cgroup, DetectsV2WithControllersAndPrefersIt) {
  test::TempDir t;
  const std::string unified = t.path + "/unified";
  fs::create_directories(unified + "/agents/a1");
  std::ofstream(unified + "/agents/a1/cgroup.controllers") << "cpuset cpu io memory pids\n";
  std::ofstream(t.path + "/mountinfo")
      << "30 25 0:26 / " << unified << " rw,nosuid - cgroup2 cgroup2 rw\n"
      << "31 25 0:27 / " << t.path << "/memory rw - cgroup cgroup rw,memory\n";
  std::ofstream(t.path + "/cgroup") << "0::/agents/a1\n4:memory:/\n";
  auto roots = CgroupRoots::detect(t.path + "/mountinfo", t.path + "/cgroup");
  EXPECT_EQ(roots.v2, unified + "/agents/a1");
  EXPECT_TRUE(roots.usable());
  EXPECT_TRUE(roots.v1_memory.empty());
}

TEST(Cgroup, FallsBackToV1WhenV2HasNoControllers) {
  test::TempDir t;
  fs::create_directories(t.path + "/unified");
  std::ofstream(t.path + "/unified/cgroup.controllers") << "\n";
  std::ofstream(t.path + "/mountinfo")
      << "30 25 0:26 / " << t.path << "/unified rw - cgroup2 cgroup2 rw\n"
      << "31 25 0:27 / " << t.path << "/memory rw - cgroup cgroup rw,memory\n"
      << "32 25 0:28 / " << t.path << "/cpu rw - cgroup cgroup rw,cpu\n"
      << "33 25 0:29 / " << t.path << "/pids rw - cgroup cgroup rw,pids\n";
  std::ofstream(t.path + "/cgroup") << "0::/\n3:pids:/\n2:cpu:/\n1:memory:/svc/agent\n";
  auto roots = CgroupRoots::detect(t.path + "/mountinfo", t.path + "/cgroup");
  EXPECT_TRUE(roots.v2.empty());
  EXPECT_EQ(roots.v1_memory, t.path + "/memory/svc/agent");
  EXPECT_EQ(roots.v1_cpu, t.path + "/cpu");
  EXPECT_TRUE(roots.usable());

  std::ofstream(t.path + "/cgroup2") << "0::/\n1:memory:/\n";
  auto partial = CgroupRoots::detect(t.path + "/mountinfo", t.path + "/cgroup2");
  EXPECT_FALSE(partial.usable());
  EXPECT_NE(partial.why_unusable.find("cpu"), std::string::npos) << partial.why_unusable;
}

TEST(Cgroup, V2WritesLimitsAndMovesItselfOutOfTheWayOfNoInternalProcesses) {
  test::TempDir t;
  CgroupRoots roots;
  roots.v2 = t.path;
  Resources r;
  r.cpu_millis = 1500;
  r.memory_bytes = 64 << 20;
  r.pids = 99;
  // A plain directory accepts the first subtree_control write; the kernel would refuse it
  // while this cgroup holds processes — that path is the "sandbox-agent" leaf below.
  fs::create_directory(t.path + "/cgroup.subtree_control");  // writing it fails: EISDIR
  Status status;
  auto cg = Cgroup::create(roots, "run-1", r, status);
  EXPECT_FALSE(cg);
  EXPECT_NE(status.error.find("cgroup.subtree_control"), std::string::npos) << status.error;
  EXPECT_NE(status.error.find("start it in a cgroup of its own"), std::string::npos) << status.error;
  EXPECT_TRUE(fs::exists(t.path + "/sandbox-agent/cgroup.procs"));
  fs::remove(t.path + "/cgroup.subtree_control");

  cg = Cgroup::create(roots, "run-2", r, status);
  ASSERT_TRUE(cg) << status.error;
  EXPECT_EQ(cg->version(), Cgroup::Version::kV2);
  EXPECT_EQ(slurp(t.path + "/cgroup.subtree_control"), "+memory +cpu +pids");
  const std::string d = t.path + "/run-2";
  EXPECT_EQ(slurp(d + "/memory.max"), std::to_string(64 << 20));
  EXPECT_EQ(slurp(d + "/memory.swap.max"), "0");
  EXPECT_EQ(slurp(d + "/cpu.max"), "150000 100000");
  EXPECT_EQ(slurp(d + "/pids.max"), "99");
  std::ofstream(d + "/memory.events") << "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n";
  std::ofstream(d + "/pids.events") << "max 7\n";
  std::ofstream(d + "/cpu.stat") << "usage_usec 10\nnr_periods 5\nnr_throttled 4\n";
  std::ofstream(d + "/memory.peak") << "1234\n";
  const auto u = cg->usage();
  EXPECT_EQ(u.oom_kills, 2u);
  EXPECT_EQ(u.pids_refused, 7u);
  EXPECT_EQ(u.cpu_throttled, 4u);
  EXPECT_EQ(u.memory_peak, 1234u);
  // add() writes the pid; a pid of no process (above pid_max) keeps the destructor's kill of
  // what is listed harmless.
  ASSERT_TRUE(cg->add(99999999).ok());
  EXPECT_EQ(slurp(d + "/cgroup.procs"), "99999999");
}

TEST(Cgroup, V1WritesCfsQuotaMemoryAndPids) {
  test::TempDir t;
  CgroupRoots roots;
  for (auto* p : {&roots.v1_memory, &roots.v1_cpu, &roots.v1_pids}) {
    *p = t.path + "/" + std::to_string(reinterpret_cast<uintptr_t>(p) % 1000);
    fs::create_directories(*p);
  }
  Resources r;
  r.cpu_millis = 250;
  r.memory_bytes = 32 << 20;
  Status status;
  auto cg = Cgroup::create(roots, "run", r, status);
  ASSERT_TRUE(cg) << status.error;
  EXPECT_EQ(slurp(roots.v1_memory + "/run/memory.limit_in_bytes"), std::to_string(32 << 20));
  EXPECT_EQ(slurp(roots.v1_cpu + "/run/cpu.cfs_quota_us"), "25000");
  EXPECT_EQ(slurp(roots.v1_cpu + "/run/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(slurp(roots.v1_pids + "/run/pids.max"), "256");
}

// The unified hierarchy's mount point and this process's cgroup in it, or empty.
std::pair<std::string, std::string> own_v2_cgroup() {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line, mount;
  while (std::getline(mountinfo, line)) {
    std::istringstream in(line);
    std::string f[5], word;
    for (auto& x : f) in >> x;
    while (in >> word && word != "-") {}
    if (in >> word && word == "cgroup2") mount = f[4];
  }
  std::ifstream self("/proc/self/cgroup");
  while (std::getline(self, line)) {
    if (line.rfind("0::", 0) == 0 && !mount.empty()) return {mount, line.substr(3)};
  }
  return {};
}

// The child reports, through its exit status, whether /proc/self/cgroup names `expected` as
// its v2 cgroup. Only async-signal-safe calls after the clone.
int child_checks_v2_cgroup(const std::string& expected) {
  char buf[4096];
  const int fd = ::open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 2;
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 3;
  buf[n] = '\0';
  const char* line = std::strstr(buf, "0::");
  if (!line) return 4;
  line += 3;
  const size_t len = std::strcspn(line, "\n");
  return len == expected.size() && std::memcmp(line, expected.data(), len) == 0 ? 0 : 1;
}

int wait_for(long pid) {
  int status = 0;
  if (::waitpid(static_cast<pid_t>(pid), &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A cgroup of the test's own in the kernel's unified hierarchy, below this process's.
class CloneIntoCgroup : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a cgroup";
    std::string mount;
    std::tie(mount, own) = own_v2_cgroup();
    if (mount.empty()) GTEST_SKIP() << "no cgroup2 hierarchy is mounted";
    rel = (own == "/" ? "" : own) + "/airlock-clone-test-" + std::to_string(::getpid());
    dir = mount + rel;
    if (::mkdir(dir.c_str(), 0755) != 0) {
      GTEST_SKIP() << "cannot make " << dir << ": " << std::strerror(errno);
    }
    made = true;
  }
  void TearDown() override {
    if (made) {
      EXPECT_EQ(::rmdir(dir.c_str()), 0) << std::strerror(errno);
    }
  }
  std::string own, rel, dir;  // this process's v2 cgroup; the test's, relative and absolute
  bool made = false;
};

TEST_F(CloneIntoCgroup, TheChildStartsInTheV2CgroupItWasGiven) {
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir_fd, 0) << std::strerror(errno);

  bool placed = false;
  long pid = clone_into_cgroup(SIGCHLD, dir_fd, placed);
  if (pid == 0) ::_exit(child_checks_v2_cgroup(rel));
  ASSERT_GT(pid, 0) << std::strerror(errno);
  EXPECT_TRUE(placed);
  EXPECT_EQ(wait_for(pid), 0) << "the child did not start in " << rel;

  // Without a directory: an ordinary clone, the child where its parent is.
  pid = clone_into_cgroup(SIGCHLD, -1, placed);
  if (pid == 0) ::_exit(child_checks_v2_cgroup(own));
  ASSERT_GT(pid, 0) << std::strerror(errno);
  EXPECT_FALSE(placed);
  EXPECT_EQ(wait_for(pid), 0);

  // A descriptor that is not a cgroup directory is the clone's error, not a silent fallback.
  const int not_cgroup = ::open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  pid = clone_into_cgroup(SIGCHLD, not_cgroup, placed);
  if (pid == 0) ::_exit(0);
  EXPECT_EQ(pid, -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_FALSE(placed);
  ::close(not_cgroup);
  ::close(dir_fd);
}

// Where clone3 is hidden (a kernel before 5.3, or a container runtime's seccomp policy that
// answers it with ENOSYS), the child is still started — by clone(2), beside its parent — and
// `placed` says the caller must move it. A seccomp filter in a helper process stands in for
// such a host.
TEST_F(CloneIntoCgroup, WithoutClone3TheChildStartsBesideItsParentAndIsNotPlaced) {
  // ENOSYS: no clone3 at all, or a policy hiding it; E2BIG and EINVAL: a clone3 older than
  // CLONE_INTO_CGROUP (a larger argument structure, an unknown flag).
  for (const int refusal : {ENOSYS, E2BIG, EINVAL}) {
    const pid_t helper = ::fork();
    if (helper == 0) {
      // 10: filter not loaded; 11: clone failed; 12: placed; 13: wait failed; else the child's.
      scmp_filter_ctx ctx = ::seccomp_init(SCMP_ACT_ALLOW);
      if (!ctx || ::seccomp_rule_add(ctx, SCMP_ACT_ERRNO(refusal), SCMP_SYS(clone3), 0) != 0 ||
          ::seccomp_load(ctx) != 0) {
        ::_exit(10);
      }
      const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      bool placed = true;
      const long pid = clone_into_cgroup(SIGCHLD, dir_fd, placed);
      if (pid == 0) ::_exit(child_checks_v2_cgroup(own));
      if (pid < 0) ::_exit(11);
      if (placed) ::_exit(12);
      const int code = wait_for(pid);
      ::_exit(code < 0 ? 13 : code);
    }
    ASSERT_GT(helper, 0);
    EXPECT_EQ(wait_for(helper), 0) << "clone3 refused with " << std::strerror(refusal)
                                   << " — 10: no filter, 11: clone failed, 12: reported as "
                                      "placed, else the child was not beside its parent";
  }
}

}  // namespace
}  // namespace airlock::sandbox
