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
// backoff (common/backoff).
//
// An http(s) server is first asked `server/discover`: one that serves MCP 2026-07-28 gets no
// session at all — no initialize, every request carries the `_meta` envelope instead, its
// input_required results become requests for the agent and its retries (stateless_upstream.h).
// Any other answer falls back to initialize. One thread; not thread-safe.
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
// Stop waiting for upstream request `id`: a 2026-07-28 server's request is cancelled by closing
// the stream that carries its answer.
struct Abandon {
  int64_t id = 0;
};
using Effect = std::variant<Transmit, Deliver, Start, Ready, Stop, OwnReply, Abandon>;

// How a session starts. `discover`: ask server/discover first and, when the server serves
// 2026-07-28, use it without a session (http(s) servers). `listen`: on such a server, keep a
// subscriptions/listen open for the list changes it announces (the tunnel's inventory
// session, which refreshes the catalog on them).
struct Mode {
  bool discover = false;
  bool listen = false;
};

using Effects = std::vector<Effect>;
}  // namespace session

class SessionCore {
 public:
  enum class State { kIdle, kStarting, kReady, kClosed };

  // `server`: its name, for error messages. `client`: the initialize params to present (the
  // agent's own protocolVersion, capabilities and clientInfo; defaults filled in).
  SessionCore(std::string server, json::object client, BackoffPolicy restarts = kRestartPolicy,
              uint64_t seed = std::random_device{}(), session::Mode mode = {});

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
  // The server serves 2026-07-28 and is used without a session.
  bool stateless() const { return stateless_; }
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
    // 2026-07-28: the answers of the current input_required round, by key, while `awaiting`
    // are still out with the agent, and the server's requestState to send back with them.
    json::object answers;
    size_t awaiting = 0;
    std::optional<json::value> request_state;
  };
  // An input request of a stateless server, sent downstream under an id of its own.
  struct Input {
    int64_t upstream = 0;  // the call it belongs to
    std::string key;       // its key in inputRequests / inputResponses
    std::string method;
  };

  void ensure_started(session::Clock::time_point now, session::Effects& out);
  void transmit_unsent(session::Effects& out);
  // Sends `id` upstream — as it is in a session, enveloped to a stateless server, or answered
  // here when that revision lacks the method. False when it was answered (and forgotten).
  bool transmit(int64_t id, session::Effects& out);
  void discovered(const json::object& answer, session::Clock::time_point now,
                  session::Effects& out);
  void ready(const std::string& version, session::Clock::time_point now, session::Effects& out);
  // A stateless server's answer to `p` (upstream `id`) asked for input: its requests go to the
  // agent. False when the answer is not input_required.
  bool ask_for_input(int64_t id, Pending& p, const json::object& answer, session::Effects& out);
  // The agent answered input request `msg` (a response): the call is sent again once every
  // request of its round is answered.
  void input_answered(json::object answer, session::Effects& out);
  void forget_inputs(int64_t upstream);
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

  session::Mode mode_;
  bool probe_ = false;  // ask server/discover at the next start
  bool stateless_ = false;
  int64_t discover_id_ = 0;  // the server/discover of the current start, 0 when none
  int64_t listen_id_ = 0;    // the open subscriptions/listen, 0 when none
  std::string log_level_;    // set by logging/setLevel; sent with each stateless request
  json::object meta_;        // the _meta envelope of a stateless request, made once
  uint64_t next_input_ = 1;
  std::map<std::string, Input> inputs_;  // downstream id key of an input request -> it
};

// Methods that are safe to send again after the upstream session was re-initialized.
bool is_idempotent(std::string_view method);

}  // namespace airlock::tunnel
