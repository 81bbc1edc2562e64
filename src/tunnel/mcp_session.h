// UpstreamSession: one MCP client session with one private server, held by mcp-tunnel on
// behalf of one agent session (or for the tunnel's own inventory). The shell over SessionCore
// (session_core.h), which decides the id mapping, the handshake and the retry policy: this
// carries its effects out — opens the transport lazily, sends and receives, waits out the
// backoff and the initialize deadline, wakes the tunnel's own requests.
// One executor; not thread-safe. Owned by shared_ptr (its coroutines hold a reference).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "tunnel/config.h"
#include "tunnel/session_core.h"
#include "tunnel/upstream.h"

namespace airlock::tunnel {

class UpstreamSession : public std::enable_shared_from_this<UpstreamSession> {
 public:
  // Receives every message for downstream: responses (with the downstream id restored),
  // server notifications and server requests, with the downstream request they relate to
  // when that is known.
  using Deliver = std::function<void(json::object message, std::optional<json::value> related)>;

  // `client` holds the initialize params to present upstream (protocolVersion, capabilities,
  // clientInfo) — the agent's own, so that the server sees what the agent supports.
  // `injection`: the credentials this session's transports inject.
  // `children`: where stdio server processes are registered (required for stdio servers).
  UpstreamSession(asio::any_io_executor ex, const UpstreamServer& server, json::object client,
                  Deliver deliver, Injection injection, std::shared_ptr<ChildProcesses> children);
  ~UpstreamSession();

  // Forwards one message from downstream. Never blocks; failures come back as error
  // responses through Deliver.
  void send(json::object message);
  // Why a request of the session's own failed: what to log, and the JSON-RPC error code when
  // the server answered with an error (0 when it did not answer: unavailable, timed out,
  // closed), so that callers tell outcomes apart by value, not by the message's text.
  struct RequestError {
    std::string message;
    int64_t code = 0;
  };
  // A request of the session's own (inventory): the result, or nullopt with `error`.
  // Cancelling the coroutine leaves the request pending until its deadline.
  asio::awaitable<std::optional<json::value>> request(std::string method, json::object params,
                                                      RequestError& error);
  // Ends the upstream session and answers nothing further.
  void close();

  // What the last initialize returned (capabilities, serverInfo, protocolVersion).
  const json::object& server_init() const { return core_.server_init(); }
  bool ready() const { return core_.state() == SessionCore::State::kReady; }
  uint64_t restarts() const { return core_.restarts(); }

 private:
  // An own request the caller is waiting for.
  struct Waiter {
    std::shared_ptr<std::optional<json::object>> reply;
    std::shared_ptr<std::string> error;
    std::shared_ptr<asio::steady_timer> wake;
  };

  void apply(session::Effects effects);
  void transmit(const json::object& message);
  asio::awaitable<void> start(std::shared_ptr<UpstreamSession> self, session::Start s);
  asio::awaitable<void> read_loop(std::shared_ptr<UpstreamSession> self,
                                  std::shared_ptr<UpstreamTransport> transport);
  void close_transport();

  asio::any_io_executor ex_;
  UpstreamServer server_;
  Injection injection_;
  std::shared_ptr<ChildProcesses> children_;
  Deliver deliver_;
  SessionCore core_;
  std::shared_ptr<UpstreamTransport> transport_;
  std::shared_ptr<asio::steady_timer> init_deadline_;  // the current start's initialize
  std::map<int64_t, Waiter> waiters_;                  // own requests by id
};

}  // namespace airlock::tunnel
