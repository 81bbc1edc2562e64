// UpstreamSession, the shell over SessionCore: its own requests end when the core says so —
// at once on a closed session, with the transport's reason when a start fails — rather than
// when their deadline passes.
#include "tunnel/mcp_session.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace airlock::tunnel {
namespace {

struct Outcome {
  std::optional<json::value> result;
  UpstreamSession::RequestError error;
};

// Runs one own request for at most 5 s (its deadline is 70 s away).
std::optional<Outcome> request_within_5s(asio::io_context& io,
                                         std::shared_ptr<UpstreamSession> session) {
  auto f = asio::co_spawn(
      io,
      [session]() -> asio::awaitable<Outcome> {
        Outcome o;
        o.result = co_await session->request("ping", {}, o.error);
        co_return o;
      },
      asio::use_future);
  io.run_for(std::chrono::seconds(5));
  if (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return std::nullopt;
  return f.get();
}

std::shared_ptr<UpstreamSession> session_with(asio::io_context& io, const std::string& url) {
  UpstreamServer server;
  server.name = "crm";
  server.url = url;
  server.connect_timeout = std::chrono::seconds(10);
  server.request_timeout = std::chrono::seconds(60);
  return std::make_shared<UpstreamSession>(
      io.get_executor(), server, json::object{}, [](json::object, std::optional<json::value>) {},
      Injection{}, nullptr);
}

TEST(UpstreamSessionShell, AnOwnRequestOnAClosedSessionFailsAtOnce) {
  asio::io_context io;
  auto session = session_with(io, "tcp://127.0.0.1:1");
  session->close();
  auto o = request_within_5s(io, session);
  ASSERT_TRUE(o) << "still waiting for its deadline";
  EXPECT_FALSE(o->result);
  EXPECT_EQ(o->error.message, "session closed");
}

TEST(UpstreamSessionShell, AFailedStartEndsAnOwnRequestWithItsReason) {
  asio::io_context io;
  auto session = session_with(io, "tcp://127.0.0.1:1");  // nothing listens on port 1
  auto o = request_within_5s(io, session);
  ASSERT_TRUE(o) << "still waiting for its deadline";
  EXPECT_FALSE(o->result);
  EXPECT_NE(o->error.message.find("127.0.0.1:1"), std::string::npos) << o->error.message;
  EXPECT_FALSE(session->ready());
  session->close();
}

}  // namespace
}  // namespace airlock::tunnel
