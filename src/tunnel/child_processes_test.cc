#include "tunnel/child_processes.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace airlock::tunnel {
namespace {

// A process leading its own group, as the stdio transport starts them; with `ignore_term`,
// it and the child it starts ignore SIGTERM.
pid_t start(bool ignore_term) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    if (ignore_term) ::signal(SIGTERM, SIG_IGN);
    if (::fork() == 0) {  // a grandchild in the same group
      ::pause();
      ::_exit(0);
    }
    ::pause();
    ::_exit(0);
  }
  return pid;
}

// Whether any process of the group is still running (a zombie waiting for its new parent to
// reap it is not).
bool group_alive(pid_t pgid) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    long ppid = 0, pgrp = 0;
    rest >> state >> ppid >> pgrp;
    if (pgrp == pgid && state != "Z") return true;
  }
  return false;
}

void run_until(boost::asio::io_context& io, const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < until) io.run_for(std::chrono::milliseconds(10));
}

TEST(ChildProcesses, StopAllEndsEveryGroupEvenOneThatIgnoresSigterm) {
  boost::asio::io_context io;
  auto children = std::make_shared<ChildProcesses>(
      io.get_executor(), ChildProcesses::Options{std::chrono::milliseconds(200),
                                                 std::chrono::milliseconds(300)});
  std::vector<pid_t> pids{start(false), start(true), start(false)};
  for (pid_t p : pids) children->add("s", p, nullptr);
  ASSERT_EQ(children->running("s"), 3u);
  bool done = false;
  boost::asio::co_spawn(io, children->stop_all(), [&](std::exception_ptr) { done = true; });
  run_until(io, [&] { return done; });
  ASSERT_TRUE(done);
  EXPECT_EQ(children->running(), 0u);
  for (pid_t p : pids) EXPECT_FALSE(group_alive(p)) << "group " << p << " survived";
}

TEST(ChildProcesses, AStoppedProcessGetsSigtermThenSigkillAndIsReapedOnSigchld) {
  boost::asio::io_context io;
  auto children = std::make_shared<ChildProcesses>(
      io.get_executor(), ChildProcesses::Options{std::chrono::milliseconds(100),
                                                 std::chrono::milliseconds(200)});
  const pid_t polite = start(false), stubborn = start(true);
  auto a = children->add("s", polite, nullptr);
  auto b = children->add("s", stubborn, nullptr);
  children->stop(a);
  children->stop(b);
  run_until(io, [&] { return a->exited && b->exited; });
  EXPECT_TRUE(a->exited);
  EXPECT_TRUE(b->exited);
  EXPECT_EQ(a->describe(), "was killed by signal 15");
  EXPECT_EQ(b->describe(), "was killed by signal 9");
  EXPECT_FALSE(group_alive(polite));
  EXPECT_FALSE(group_alive(stubborn));
}

TEST(ChildProcesses, MakeRoomEndsTheLeastRecentlyUsedSessionAndNeverTheCatalogs) {
  boost::asio::io_context io;
  auto children = std::make_shared<ChildProcesses>(io.get_executor());
  std::vector<std::string> ended;
  auto catalog = children->add("s", start(false), nullptr);  // the tunnel's own: not evictable
  std::vector<std::shared_ptr<ChildProcess>> sessions;
  for (int i = 0; i < 3; ++i) {
    auto c = children->add("s", start(false), [&, i] { ended.push_back("session " + std::to_string(i)); });
    c->last_used = std::chrono::steady_clock::now() - std::chrono::seconds(10 - i);
    sessions.push_back(c);
  }
  catalog->last_used = std::chrono::steady_clock::now() - std::chrono::hours(1);
  sessions[0]->last_used = std::chrono::steady_clock::now();  // used just now
  EXPECT_EQ(children->make_room("s", 3), 2u);  // 4 running, room for one more under 3
  EXPECT_EQ((std::vector<std::string>{"session 1", "session 2"}), ended);
  EXPECT_EQ(children->evicted("s"), 2u);
  EXPECT_EQ(children->make_room("other", 1), 0u);
  bool done = false;
  boost::asio::co_spawn(io, children->stop_all(), [&](std::exception_ptr) { done = true; });
  run_until(io, [&] { return done; });
  EXPECT_EQ(children->running(), 0u);
}

}  // namespace
}  // namespace airlock::tunnel
