// McpService: the connector side of MCP serving, shared by mcp-tunnel and sandbox-agent. It
// answers the `mcp` streams airlockd opens (one agent session with one server each; other
// stream kinds are refused), pushes the connector's inventory on every link when the link comes
// up and whenever it changes, and reports what the connector's redactor replaced as `events`
// streams (docs/protocol.md, "Stream kinds"). What serves an agent session's messages is an
// McpBackend: the tunnel's sessions are with private MCP servers, the sandbox agent's with its
// tools.
// Runs on the connector's executor; not thread-safe. Owned by the program (Tunnel,
// SandboxAgent), which also owns the backend and the Connector, and outlives neither.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>

#include "common/connector.h"
#include "common/link.h"
#include "common/secrets.h"
#include "common/stream_contract.h"

namespace airlock {

// One agent session on a backend. The service calls send() for every message from the agent,
// in order, and close() once when the stream ends (the agent session ended, or the link went).
class McpBackendSession {
 public:
  virtual ~McpBackendSession() = default;
  virtual void send(boost::json::object message) = 0;
  virtual void close() = 0;
};

class McpBackend {
 public:
  // A message for the agent; `related` is the agent request it belongs to (a response's own id,
  // or the request a server notification or request was sent during).
  using Emit = std::function<void(boost::json::object message,
                                  std::optional<boost::json::value> related)>;
  // Ends the stream once what was emitted is written, with a RESET carrying `code` and
  // `reason`: airlockd's next request for the server opens another stream. kRefused says
  // nothing of the session was lost (a busy sandbox); other codes that its state is gone.
  using End = std::function<void(proto::ResetCode code, std::string reason)>;

  virtual ~McpBackend() = default;
  // Why a stream for `open` is refused outright (an unknown server); empty to serve it.
  virtual std::string refuse(const proto::McpStreamOpen& open) const = 0;
  // Largest message airlockd may send on a stream for `server`.
  virtual size_t max_message(const std::string& server) const = 0;
  // Opens the session behind one stream. Null with `problem` set: the session cannot be served
  // (a credential refused, the sandbox busy); every request on the stream is answered with a
  // JSON-RPC error saying `problem`, and the stream stays open until airlockd ends it.
  virtual std::shared_ptr<McpBackendSession> open_session(const proto::McpStreamOpen& open,
                                                          Emit emit, End end,
                                                          std::string& problem) = 0;
  // What the connector offers, as pushed to airlockd.
  virtual proto::InventoryReport inventory() const = 0;
};

struct McpServiceStats {
  uint64_t streams_refused = 0;  // of a kind or for a server this connector does not serve
  uint64_t sessions_total = 0;   // agent sessions served
  size_t sessions_open = 0;
  uint64_t redactions_total = 0;  // secret occurrences kept out of what was sent
};

class McpService {
 public:
  // `program` names the connector in messages ("mcp-tunnel", "sandbox-agent").
  McpService(asio::any_io_executor ex, std::string program, McpBackend& backend);
  ~McpService();

  // Makes every byte the connector sends pass the redactor for `store`'s secrets (the link
  // redacts; see LinkOptions::redaction), and reports what it catches outside any agent
  // session. Before the Connector is made from `options`.
  void redact_links(ConnectorOptions& options, std::shared_ptr<secrets::SecretStore> store);
  // Sets the connector whose links inventories and events go out on; before it runs.
  void attach(Connector& connector) { connector_ = &connector; }
  // The connector's stream handler.
  void on_stream(std::shared_ptr<LinkStream> stream);
  // The connector's on_link_up: the inventory, and events that waited for a link.
  void on_link_up(const std::shared_ptr<Link>& link);
  // What the backend offers changed: pushed on every link now.
  void inventory_changed();
  // A redaction in bytes bound for airlockd: logged now (batched), sent as an event soon.
  // server/tool/agent are empty for bytes of no agent session (the hello, a GOAWAY reason).
  void record_redaction(const std::string& secret, const std::string& server,
                        const std::string& tool, const std::string& agent, uint64_t count);
  // Stopping: sessions with nothing in flight end now, the others as their last call is
  // answered — so that the connector's drain waits for calls, not for sessions a client never
  // ends. Pending events are sent.
  void stop();

  const McpServiceStats& stats() const { return stats_; }

 private:
  struct Session;
  asio::awaitable<void> serve(std::shared_ptr<LinkStream> stream, proto::McpStreamOpen open);
  // Ends the session's stream when no request of it is in flight.
  void end_if_idle(Session& s);
  void flush_redactions();
  std::shared_ptr<Link> usable_link() const;

  asio::any_io_executor executor_;
  std::string program_;
  McpBackend& backend_;
  Connector* connector_ = nullptr;
  std::set<std::shared_ptr<Session>> sessions_;
  // Redaction events not yet sent: (secret, server, tool, agent) -> count.
  using RedactionKey = std::tuple<std::string, std::string, std::string, std::string>;
  // Keeps one events body well under airlockd's limit (names are at most 256 bytes).
  static constexpr size_t kMaxRedactionKeys = 1000;
  std::map<RedactionKey, uint64_t> redactions_;         // this batch, not yet logged
  std::map<RedactionKey, uint64_t> unsent_redactions_;  // logged, waiting for a link
  asio::steady_timer flush_timer_;
  bool flush_scheduled_ = false;
  bool stopping_ = false;
  McpServiceStats stats_;
};

}  // namespace airlock
