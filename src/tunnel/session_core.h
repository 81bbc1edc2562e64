// SessionCore: what mcp-tunnel decides for one upstream MCP session, without I/O or clocks.
// It takes events — a message from downstream (the agent, through airlockd), a request of the
// tunnel's own, the transport opened or failed to, a message from the server, the session
// lost, the time passed in each — and returns effects for the shell (mcp_session.cc) to carry
// out: transmit a message upstream, deliver one downstream, start a session after a delay,
// tell the transport the negotiated version, close the transport, complete an own request.
//
// What it keeps: the id mapping (every request goes upstream under an id of the session's
// own, so requests of different origins never collide, and its answer goes back under the
// downstream id); the initialize handshake; and the retry policy — when the session ends,
// idempotent requests in flight are sent again once on the next session, a tools/call is
// answered with an error and never replayed; starts after a failure wait a full-jitter
// backoff (common/backoff). One thread; not thread-safe.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "common/backoff.h"

namespace airlock::tunnel {
namespace json = boost::json;

namespace session {
using Clock = std::chrono::steady_clock;

// Send on the open transport.
struct Transmit {
  json::object message;
};
// Hand to downstream: a response (its downstream id restored), or a server notification or
// request with the downstream request it relates to when that is known.
struct Deliver {
  json::object message;
  std::optional<json::value> related;
};
// Open a transport after `after`, then report on_transport_open / on_start_failed with `attempt`.
struct Start {
  std::chrono::milliseconds after{0};
  uint64_t attempt = 0;
};
// The session is initialized at this protocol version.
struct Ready {
  std::string protocol_version;
};
// Close the transport. `starting`: the session never became ready (a failed start).
struct Stop {
  std::string why;
  bool starting = false;
};
// An own request is answered (`reply` the whole response) or failed (`error` says why).
struct OwnReply {
  int64_t id = 0;
  std::optional<json::object> reply;
  std::string error;
};
using Effect = std::variant<Transmit, Deliver, Start, Ready, Stop, OwnReply>;
using Effects = std::vector<Effect>;
}  // namespace session

class SessionCore {
 public:
  enum class State { kIdle, kStarting, kReady, kClosed };

  // `server`: its name, for error messages. `client`: the initialize params to present (the
  // agent's own protocolVersion, capabilities and clientInfo; defaults filled in).
  SessionCore(std::string server, json::object client, BackoffPolicy restarts = kRestartPolicy,
              uint64_t seed = std::random_device{}());

  // A message from downstream. Requests get an upstream id and start a session when there is
  // none; notifications/cancelled is mapped to the upstream id (and forgets the request);
  // responses (to a server's request) keep the server's id. Malformed messages are dropped
  // (airlockd validated them).
  session::Effects send(json::object message, session::Clock::time_point now);
  // A request of the tunnel's own (its inventory); returns its id, reported by OwnReply.
  int64_t own_request(const std::string& method, json::object params,
                      session::Clock::time_point now, session::Effects& out);
  // The shell gave up waiting for an own request: forget it.
  void own_abandoned(int64_t id);

  // The transport of start `attempt` is open: the initialize request to transmit.
  session::Effects on_transport_open(uint64_t attempt);
  // Start `attempt` failed (transport, initialize refused, or no answer in time): every
  // request waiting for the session fails now, and later ones start again after a backoff.
  session::Effects on_start_failed(uint64_t attempt, const std::string& error,
                                   session::Clock::time_point now);
  // A message from the server.
  session::Effects on_upstream(json::object message, std::optional<json::value> related,
                               session::Clock::time_point now);
  // The session ended (process died, connection lost, HTTP 404).
  session::Effects on_lost(const std::string& why, session::Clock::time_point now);
  // Ends the session; answers nothing further. Own requests fail.
  session::Effects close();

  State state() const { return state_; }
  uint64_t attempt() const { return attempt_; }
  const json::object& server_init() const { return server_init_; }
  const std::string& last_error() const { return last_error_; }
  uint64_t restarts() const { return restarts_; }
  size_t pending() const { return pending_.size(); }

  // Restarts wait 0 … min(30 s, 250 ms · 2^failures); a session up for a minute resets it.
  static constexpr BackoffPolicy kRestartPolicy{std::chrono::milliseconds(250),
                                                std::chrono::milliseconds(30000),
                                                std::chrono::milliseconds(60000)};

 private:
  struct Pending {
    json::value downstream_id;  // null for own requests and initialize
    std::string method;
    json::object message;  // as sent upstream, for a resend after re-initialization
    bool own = false;
    bool retried = false;
    bool sent = false;  // transmitted on the current session
  };

  void ensure_started(session::Clock::time_point now, session::Effects& out);
  void transmit_unsent(session::Effects& out);
  void fail(Pending& p, int code, const std::string& message, session::Effects& out);
  // Fails every request: downstream ones with `message`, own ones with `own_message`.
  void fail_all(const std::string& message, const std::string& own_message, session::Effects& out);
  void initialized(const json::object& answer, session::Clock::time_point now,
                   session::Effects& out);
  std::optional<json::value> relate(const std::optional<json::value>& upstream_related) const;

  std::string server_;
  json::object client_;
  Backoff backoff_;
  State state_ = State::kIdle;
  uint64_t attempt_ = 0;
  int64_t init_id_ = 0;  // the initialize request of the current start, 0 when none
  int64_t next_id_ = 1;
  std::map<int64_t, Pending> pending_;            // upstream id -> request
  std::map<std::string, int64_t> by_downstream_;  // downstream id key -> upstream id
  json::object server_init_;
  session::Clock::time_point not_before_{};  // no start before this (backoff)
  uint64_t restarts_ = 0;
  bool ever_ready_ = false;
  std::string last_error_;
};

// Methods that are safe to send again after the upstream session was re-initialized.
bool is_idempotent(std::string_view method);

}  // namespace airlock::tunnel
