// The cgroup code against directory trees laid out like cgroupfs. This machine's kernel has
// its controllers on cgroup v1 (the e2e battery exercises that for real); the v2 path is
// checked here for what it detects and writes.
#include "sandbox/cgroup.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

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

}  // namespace
}  // namespace airlock::sandbox
