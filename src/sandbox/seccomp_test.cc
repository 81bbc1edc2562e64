// The seccomp hand-over: what the agent compiles is a whole BPF program, and a program that
// arrives damaged is refused before anything is installed (so the tool never runs without its
// filter). Loading a real filter is tried by the escape battery, not here: it would confine
// the test process itself.
#include <linux/filter.h>

#include <gtest/gtest.h>

#include "sandbox/steps.h"

namespace airlock::sandbox {
namespace {

TEST(Seccomp, TheCompiledProgramIsWholeInstructions) {
  std::string program;
  ASSERT_TRUE(compile_seccomp_filter(program).ok());
  ASSERT_FALSE(program.empty());
  EXPECT_EQ(program.size() % sizeof(sock_filter), 0u);
  // One rule per denied call at least, and the architecture check: well beyond a stub.
  EXPECT_GT(program.size() / sizeof(sock_filter), denied_syscalls().size());
  std::string again;
  ASSERT_TRUE(compile_seccomp_filter(again).ok());
  EXPECT_EQ(program, again) << "the same list compiles to the same program";
}

TEST(Seccomp, ADamagedProgramIsRefusedBeforeLoading) {
  for (const std::string& bad : {std::string(), std::string("abc"),
                                 std::string(sizeof(sock_filter) * (BPF_MAXINSNS + 1), '\0')}) {
    const Status s = install_seccomp_filter(bad);
    EXPECT_FALSE(s.ok()) << bad.size();
    EXPECT_NE(s.error.find("malformed"), std::string::npos) << s.error;
  }
}

}  // namespace
}  // namespace airlock::sandbox
