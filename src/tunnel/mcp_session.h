// UpstreamSession: one MCP client session with one private server, held by mcp-tunnel on
// behalf of one agent session (or for the tunnel's own inventory). It opens the transport and
// initializes lazily, rewrites request ids so that its own requests never collide with the
// agent's, and when the upstream session ends (process died, connection lost, HTTP 404) it
// re-initializes by itself: idempotent requests in flight (lists, reads, gets, ping) are sent
// again; a tools/call in flight is answered with an error and never replayed.
// One executor; not thread-safe. Owned by shared_ptr (its coroutines hold a reference).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "tunnel/config.h"
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
  const json::object& server_init() const { return server_init_; }
  bool ready() const { return state_ == State::kReady; }
  uint64_t restarts() const { return restarts_; }

 private:
  enum class State { kIdle, kConnecting, kReady, kClosed };
  struct Pending {
    json::value downstream_id;  // null for the session's own requests
    std::string method;
    json::object message;  // as sent upstream, for a resend after re-initialization
    bool retried = false;
    bool sent = false;  // transmitted on the current upstream session
    // For the session's own requests.
    std::shared_ptr<std::optional<json::object>> reply;
    std::shared_ptr<asio::steady_timer> wake;
  };

  void ensure_connecting();
  asio::awaitable<void> connect(std::shared_ptr<UpstreamSession> self);
  asio::awaitable<void> read_loop(std::shared_ptr<UpstreamSession> self,
                                  std::shared_ptr<UpstreamTransport> transport);
  void on_lost(const std::string& why);
  void fail_pending(Pending& p, int code, const std::string& message);
  void transmit(const json::object& message);
  void transmit_pending(int64_t upstream_id);
  void handle_inbound(Inbound in);
  std::optional<json::value> relate(const std::optional<json::value>& upstream_related) const;

  asio::any_io_executor ex_;
  UpstreamServer server_;
  Injection injection_;
  std::shared_ptr<ChildProcesses> children_;
  json::object client_;
  Deliver deliver_;
  State state_ = State::kIdle;
  std::shared_ptr<UpstreamTransport> transport_;
  int64_t next_id_ = 1;
  std::map<int64_t, Pending> pending_;            // upstream id -> request
  std::map<std::string, int64_t> by_downstream_;  // downstream id key -> upstream id
  std::deque<json::object> queued_;               // non-requests waiting for the session
  json::object server_init_;
  int failures_ = 0;  // consecutive failed starts, for the restart backoff
  std::chrono::steady_clock::time_point next_attempt_{};
  uint64_t restarts_ = 0;
  std::string last_error_;  // why the last start failed
  bool ever_ready_ = false;
};

// Methods that are safe to send again after the upstream session was re-initialized.
bool is_idempotent(std::string_view method);

}  // namespace airlock::tunnel
