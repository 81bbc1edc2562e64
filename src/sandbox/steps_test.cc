// The shared readers: a descriptor is drained to EOF whatever the limit (so a writer never
// blocks), at most `limit` bytes are kept, and going over it is reported.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "sandbox/steps.h"
#include "test/e2e/temp_dir.h"

namespace airlock::sandbox {
namespace {

TEST(Steps, ReadToEndKeepsAtMostTheLimitAndSaysWhenItWasExceeded) {
  for (const size_t limit : {size_t{10}, size_t{200000}, std::string::npos}) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    const std::string sent(150000, 'x');  // more than a pipe holds: the reader must drain
    pid_t writer = ::fork();
    if (writer == 0) {
      ::close(fds[0]);
      const bool whole = ::write(fds[1], sent.data(), sent.size()) == static_cast<ssize_t>(sent.size());
      ::_exit(whole ? 0 : 1);
    }
    ::close(fds[1]);
    std::string got;
    const bool within = read_to_end(fds[0], got, limit);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(writer, &status, 0);
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the writer was not drained";
    EXPECT_EQ(within, limit >= sent.size()) << limit;
    EXPECT_EQ(got.size(), std::min(limit, sent.size())) << limit;
  }
  std::string out;
  EXPECT_FALSE(read_to_end(-1, out, 10));
}

TEST(Steps, ReadFileReadsWholeFilesAndFailsOnMissingOnes) {
  test::TempDir d;
  const std::string p = d.path + "/f";
  ASSERT_TRUE(write_file(p, "first\nsecond\n", O_WRONLY | O_CREAT | O_TRUNC).ok());
  std::string out = "old";
  ASSERT_TRUE(read_file(p, out));
  EXPECT_EQ(out, "first\nsecond\n");
  EXPECT_FALSE(read_file(d.path + "/missing", out));
}

// /etc copies of image "host": which ones go, and when.
TEST(Steps, StaleEtcCopiesGoAfterTheirMinimumAgeAndTheCurrentOneStays) {
  namespace fs = std::filesystem;
  auto make = [](const std::string& dir, std::initializer_list<const char*> names) {
    for (const char* n : names) {
      fs::create_directories(dir + "/" + n);
      std::ofstream(dir + "/" + n + "/passwd") << "root:x:0:0::/:/bin/sh\n";
    }
  };
  auto names = [](const std::string& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename());
    return out;
  };
  test::TempDir d;
  make(d.path, {"etc-aaaa", "etc-bbbb", "etc-tmp-x1", "etc-trash-y1", "root"});
  // Everything was just made: nothing is a minute old.
  EXPECT_EQ(remove_stale_etc_copies(d.path, "etc-aaaa"), 0u);
  EXPECT_EQ(names(d.path).size(), 5u);
  // A build that has just marked itself finished (the modification time every finished copy
  // carries, decades back) is still being made.
  const timespec marked[2] = {{0, UTIME_OMIT}, {1, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (d.path + "/etc-tmp-x1").c_str(), marked, 0), 0);
  EXPECT_EQ(remove_stale_etc_copies(d.path, ""), 0u);
  // The agent (no current key) takes only abandoned builds, here one last written an hour ago.
  const timespec hour_ago[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (d.path + "/etc-tmp-x1").c_str(), hour_ago, 0), 0);
  EXPECT_EQ(remove_stale_etc_copies(d.path, ""), 1u);
  // Past the age (0 here: a copy's age is its ctime, which a test cannot set back) it also
  // takes damaged copies set aside, never a copy.
  EXPECT_EQ(remove_stale_etc_copies(d.path, "", 0), 1u);
  EXPECT_EQ(names(d.path), (std::set<std::string>{"etc-aaaa", "etc-bbbb", "root"}));
  // A run that built etc-aaaa takes every other copy past the age, never its own or what is
  // not a copy.
  EXPECT_EQ(remove_stale_etc_copies(d.path, "etc-aaaa", 0), 1u);
  EXPECT_EQ(names(d.path), (std::set<std::string>{"etc-aaaa", "root"}));
}

}  // namespace
}  // namespace airlock::sandbox
