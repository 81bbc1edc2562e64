// GatewayCore: what airlockd's /mcp decides for agent sessions, without I/O or clocks.
// It takes events — initialize from an authenticated agent, any other message of an agent on
// its session, a line from a connector on one of the session's server streams, a server stream
// ended (and how), the catalog changed, the time passed — and returns effects for the shell
// (mcp_gateway.cc) to carry out: open a stream to a connector, send on one, close one, answer
// the agent (on the answer to one of its requests or on the session's GET stream), write an
// audit record, wake the core at a deadline, forget a session.
//
// What it keeps per session: the agent and its key's scope, the negotiated version and the
// client's capabilities, one server stream per (connector, server) it reached, the calls in
// flight on them (deadline, progress token, byte and redaction counts for the audit record),
// the server-to-client requests relayed to the agent (under ids of the session's own), the
// sandbox sessions it lost, its log level, and which list signatures it last saw. A 2026-07-28
// request has no session: it runs in a context of its agent's own (a session without an id)
// whose calls are keyed by exchange, and a session-based server's questions reach it as
// input_required results with a signed requestState. What is routed where comes from the
// catalog the shell hands it. One thread; not thread-safe.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/jsonrpc.h"
#include "controlplane/audit_chain.h"
#include "controlplane/catalog.h"

namespace airlock::controlplane {

namespace gateway {
using Clock = std::chrono::steady_clock;

// Open a stream to `connector` with `meta` (a serialized McpStreamOpen) as the session's
// server stream `stream`. When it cannot be opened, report upstream_closed(kNeverOpened).
struct OpenUpstream {
  std::string session;
  std::string stream;
  ConnectorRef connector;
  std::string meta;
};
// Send one message (a serialized JSON-RPC object) on an open server stream.
struct SendUpstream {
  std::string session;
  std::string stream;
  std::string message;
};
// End this side of a server stream; the core has forgotten it.
struct CloseUpstream {
  std::string session;
  std::string stream;
};
// A message for the agent. `exchange`: the agent request it answers or belongs to, by the
// number the shell gave it (one per HTTP POST: request ids are the agent's and may repeat);
// 0: for the session's GET stream. `final`: the request's answer, the last message for it.
// `http_status`: for a final answer given before anything else was sent.
struct ToAgent {
  std::string session;
  uint64_t exchange = 0;
  std::string message;
  bool final = false;
  int http_status = 200;
};
// An audit record. `metered`: a routed request's record, also counted in the call metrics.
struct Record {
  AuditRecord record;
  bool metered = false;
};
// Report time_passed() at `at` (or later): a call's deadline.
struct ArmDeadline {
  Clock::time_point at;
};
// The session ended: nothing more comes for it.
struct SessionEnded {
  std::string session;
};
using Effect = std::variant<OpenUpstream, SendUpstream, CloseUpstream, ToAgent, Record, ArmDeadline,
                            SessionEnded>;
using Effects = std::vector<Effect>;

// How a server stream ended.
struct StreamEnd {
  enum class Kind {
    kNeverOpened,  // the connector is not connected, or refused a new stream at once
    kRefused,      // the connector refused it before anything ran (e.g. no free sandbox)
    kEnded,        // the connector or the stream ended it
    kLinkLost,     // the connector's link went: what was in flight has an unknown outcome
  };
  Kind kind = Kind::kEnded;
  std::string why;
};

// The request metadata headers of Streamable HTTP 2026-07-28, as received (empty: absent).
// The core compares them with the body.
struct RequestHeaders {
  std::string protocol_version;  // MCP-Protocol-Version
  std::string method;            // Mcp-Method
  std::string name;              // Mcp-Name, its =?base64?…?= form decoded
  // Mcp-Param-<Name> headers: <name> lower-cased, the value as sent (maybe =?base64?…?=).
  std::vector<std::pair<std::string, std::string>> params;
};

// What routing reads: the catalog and the bindings it points into, and every connector's last
// inventory (to say why a tool that was offered once is unavailable now).
struct CatalogView {
  std::shared_ptr<const Catalog> catalog = std::make_shared<Catalog>();
  std::shared_ptr<const std::vector<Binding>> bindings = std::make_shared<std::vector<Binding>>();
  std::shared_ptr<const std::map<ConnectorRef, ConnectorInventory>> inventories =
      std::make_shared<std::map<ConnectorRef, ConnectorInventory>>();
};
}  // namespace gateway

class GatewayCore {
 public:
  struct Limits {
    size_t page_size = 100;
    size_t max_sessions = 10000;
    std::chrono::milliseconds session_idle_timeout{std::chrono::minutes(30)};
    // The key that signs the requestState of input_required results (HMAC-SHA256): random,
    // drawn by the shell at start, never shown. A state outlives neither it nor its call.
    std::string state_key;
  };
  // An authenticated agent: its name and its key's tool scope (globs).
  struct Agent {
    std::string name;
    std::vector<std::string> scope;
  };

  explicit GatewayCore(Limits limits);
  ~GatewayCore();

  // The catalog changed: sessions whose visible lists changed are told on their GET stream.
  gateway::Effects set_catalog(gateway::CatalogView view);
  const gateway::CatalogView& catalog() const { return view_; }

  // `initialize` from `agent`: opens session `id` (`tag` names it in logs and the audit log;
  // the shell draws both) and answers the request as `exchange`. No session opens when it is
  // refused.
  gateway::Effects initialize(const std::string& id, const std::string& tag, const Agent& agent,
                              const jsonrpc::Message& msg, uint64_t exchange,
                              gateway::Clock::time_point now);
  // A request of MCP 2026-07-28 (or any request naming a version in its _meta): served without
  // a session, in a context of the agent's own that keeps its connector streams warm across
  // requests. Its _meta and `headers` are checked, its answer goes to `exchange`.
  gateway::Effects modern_request(const Agent& agent, const gateway::RequestHeaders& headers,
                                  jsonrpc::Message msg, size_t bytes, uint64_t exchange,
                                  gateway::Clock::time_point now);
  // The agent stopped reading a modern request's answer (it closed the SSE stream): a call is
  // cancelled, a subscriptions/listen stream ends.
  gateway::Effects exchange_gone(uint64_t exchange, gateway::Clock::time_point now);
  // The modern revision lets a gateway refuse from the headers alone: a tools/call or
  // prompts/get whose Mcp-Name is outside the agent's scope is refused (HTTP 403, audited)
  // before the body is read. Empty when the headers allow it.
  gateway::Effects refuse_by_headers(const Agent& agent, const gateway::RequestHeaders& headers,
                                     uint64_t exchange, gateway::Clock::time_point now);
  // The protocol versions /mcp serves, newest first.
  static const std::vector<std::string>& supported_versions();
  // Whether `version` is one served in sessions (after initialize).
  static bool session_version(std::string_view version);
  // Whether a request is of the 2026-07-28 revision: its _meta names a protocol version, or
  // its MCP-Protocol-Version header (`header_version`) is 2026-07-28.
  static bool is_modern(const jsonrpc::Message& msg, std::string_view header_version);

  // Any other message of the agent on session `id`: `bytes` its size on the wire; a request's
  // answer and what belongs to it go to `exchange` (non-zero, unique among those in flight).
  gateway::Effects agent_message(const std::string& id, jsonrpc::Message msg, size_t bytes,
                                 uint64_t exchange, gateway::Clock::time_point now);
  // One line (an McpEnvelope) a connector sent on the session's server stream `stream`.
  gateway::Effects upstream_line(const std::string& id, const std::string& stream,
                                 std::string_view line, gateway::Clock::time_point now);
  // The server stream ended; calls on it are answered by how.
  gateway::Effects upstream_closed(const std::string& id, const std::string& stream,
                                   const gateway::StreamEnd& end, gateway::Clock::time_point now);
  // Calls past their deadline are cancelled at the server and answered; sessions idle past
  // the limit end.
  gateway::Effects time_passed(gateway::Clock::time_point now);
  // Ends the session: calls in flight are answered, its streams close.
  gateway::Effects end_session(const std::string& id, const std::string& why,
                               gateway::Clock::time_point now);
  gateway::Effects end_all(const std::string& why, gateway::Clock::time_point now);

  // Whether session `id` is open and belongs to `agent`: anyone else's session is as unknown
  // as a made-up id. Counts as activity.
  bool touch(const std::string& id, const std::string& agent, gateway::Clock::time_point now);
  // The agent has (or no longer has) the session's GET stream open: a session with a listener
  // is not idle.
  void listening(const std::string& id, bool on);
  // The earliest deadline of a call in flight.
  std::optional<gateway::Clock::time_point> next_deadline() const;
  size_t session_count() const { return sessions_.size(); }
  // The calls in flight on session `id`.
  size_t calls_of(const std::string& id) const;

 private:
  struct Session;
  struct Call;
  struct Stream;

  using Out = gateway::Effects;
  void to_agent(Session& s, uint64_t exchange, json::object msg, bool final, Out& out);
  // `http_status`: of a final answer that is the first thing the call's exchange hears.
  void to_call(Session& s, Call& c, const json::object& msg, bool final, Out& out,
               int http_status = 200);
  void complete(Session& s, const std::string& key, json::object answer,
                gateway::Clock::time_point now, Out& out, int http_status = 200);
  void send(Session& s, const std::string& stream, const json::object& msg, Out& out);
  void notify_list_changes(Session& s, Out& out);
  void agent_request(Session& s, jsonrpc::Message msg, size_t bytes, uint64_t exchange,
                     gateway::Clock::time_point now, Out& out);
  void route(Session& s, jsonrpc::Message msg, size_t bytes, uint64_t exchange,
             gateway::Clock::time_point now, Out& out);
  void agent_notification(Session& s, const jsonrpc::Message& msg, gateway::Clock::time_point now,
                          Out& out);
  void agent_response(Session& s, jsonrpc::Message msg, size_t bytes,
                      gateway::Clock::time_point now, Out& out);
  Stream* stream_for(Session& s, const Route& r, std::string& error, Out& out);
  void set_level(Session& s, Stream& st, Out& out);
  void close_session(Session& s, const std::string& why, gateway::Clock::time_point now, Out& out);
  std::string unknown_tool_message(const std::string& name) const;
  bool in_scope(const Session& s, std::string_view name) const;
  bool binding_visible(const Session& s, const Binding* b) const;
  std::vector<const ExposedItem*> visible_tools(const Session& s) const;
  std::vector<const ExposedItem*> visible_prompts(const Session& s) const;
  std::vector<const ExposedItem*> visible_resources(const Session& s) const;
  void list_page(Session& s, const jsonrpc::Message& msg, uint64_t exchange,
                 std::vector<json::object> items, const char* key, Out& out);

  Session& context_of(const Agent& agent, gateway::Clock::time_point now, Out& out);
  void refuse_for_capability(Session& s, Call& c, const std::string& capability,
                             gateway::Clock::time_point now, Out& out);
  std::string param_mismatch(const gateway::RequestHeaders& headers,
                             const boost::json::object* params) const;
  void modern(Session& s, jsonrpc::Message msg, size_t bytes, uint64_t exchange,
              gateway::Clock::time_point now, Out& out);
  void listen(Session& s, const jsonrpc::Message& msg, uint64_t exchange, Out& out);
  void ask_agent(Session& s, Call& c, Out& out);
  void resume(Session& s, jsonrpc::Message msg, size_t bytes, uint64_t exchange,
              gateway::Clock::time_point now, Out& out);
  std::string seal_state(const Session& s, const Call& c) const;

  Limits limits_;
  gateway::CatalogView view_;
  std::map<std::string, std::unique_ptr<Session>> sessions_;
  // Modern requests in flight and listen streams, by exchange: their context and call key.
  std::map<uint64_t, std::pair<std::string, std::string>> exchanges_;
};

}  // namespace airlock::controlplane
