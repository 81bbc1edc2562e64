// SandboxHandles: a handle works for the agent that opened it and for no other, its sandbox is
// removed when closed, idle or all are, and never while a call runs in it.
#include "sandbox/sandbox_handles.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

namespace airlock::sandbox {
namespace {
using namespace std::chrono_literals;

class Handles : public ::testing::Test {
 protected:
  std::shared_ptr<SandboxSession> sandbox() {
    return std::make_shared<SandboxSession>(io.get_executor(), "s" + std::to_string(++made));
  }
  asio::io_context io;
  int made = 0;
  std::vector<std::tuple<std::string, std::string, bool>> removed;
  SandboxHandles handles{io.get_executor(), 50ms,
                         [this](const std::string& h, const std::string& agent, bool idle) {
                           removed.emplace_back(h, agent, idle);
                         }};
};

TEST_F(Handles, AHandleNamesItsSandboxForItsAgentOnly) {
  auto box = sandbox();
  const std::string h = handles.add("alice", box);
  EXPECT_EQ(h.size(), 4u + 32u);
  EXPECT_EQ(h.rfind("sbx_", 0), 0u);
  EXPECT_NE(handles.add("alice", sandbox()), h) << "each handle is new";
  std::string why;
  EXPECT_EQ(handles.find("alice", h, why), box);
  // Another agent learns nothing: the words are those for a handle that never existed.
  std::string other, unknown;
  EXPECT_EQ(handles.find("bob", h, other), nullptr);
  const std::string made_up = "sbx_" + std::string(32, '0');
  EXPECT_EQ(handles.find("alice", made_up, unknown), nullptr);
  EXPECT_EQ(other.replace(other.find(h), h.size(), "X"),
            unknown.replace(unknown.find(made_up), made_up.size(), "X"));
  std::string refused;
  EXPECT_FALSE(handles.remove("bob", h, refused));
  EXPECT_EQ(refused.replace(refused.find(h), h.size(), "X"), other);
  EXPECT_FALSE(box->ended());
  EXPECT_TRUE(handles.remove("alice", h, refused));
  EXPECT_TRUE(box->ended()) << "its sandbox is closed with it";
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], std::make_tuple(h, std::string("alice"), false));
  EXPECT_EQ(handles.find("alice", h, why), nullptr);
}

TEST_F(Handles, IdleSandboxesAreRemovedButNotWhileACallRuns) {
  const std::string busy = handles.add("alice", sandbox());
  const std::string idle = handles.add("alice", sandbox());
  handles.call_started(busy);
  io.run_for(200ms);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], std::make_tuple(idle, std::string("alice"), true));
  std::string why;
  EXPECT_NE(handles.find("alice", busy, why), nullptr) << "a call is running in it";
  handles.call_finished(busy);
  io.restart();
  io.run_for(200ms);
  EXPECT_EQ(removed.size(), 2u);
  EXPECT_EQ(handles.size(), 0u);
}

TEST_F(Handles, ADeadSandboxIsNotFoundAndAllAreRemovedAtStop) {
  auto box = sandbox();
  const std::string h = handles.add("alice", box);
  handles.add("bob", sandbox());
  box->close();  // as when its processes died
  std::string why;
  EXPECT_EQ(handles.find("alice", h, why), nullptr);
  handles.remove_all();
  EXPECT_EQ(removed.size(), 2u);
  EXPECT_EQ(handles.size(), 0u);
}

}  // namespace
}  // namespace airlock::sandbox
