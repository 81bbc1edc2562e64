// Tunnel: mcp-tunnel as a library. Builds the hello (kind "tunnel", inventory from
// tunnel.yaml: server names, URLs and credential names — never values), runs a Connector,
// and optionally serves /ready and /metrics on a loopback address.
// Streams airlockd opens of kind "mcp" carry one agent session's traffic with one private
// server (newline-delimited JSON-RPC, see docs/protocol.md); each gets its own
// UpstreamSession. The tunnel keeps a catalog of every server's tools, resources and prompts
// (its own inventory session per server, refreshed on list_changed) and pushes it to airlockd
// on every link as an "inventory" stream. Other stream kinds are refused.
// One executor; not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/connector.h"
#include "common/http_server.h"
#include "common/secrets.h"
#include "common/secrets_watcher.h"
#include "tunnel/config.h"
#include "tunnel/mcp_session.h"

namespace airlock::tunnel {

struct TunnelOptions {
  ConnectorOptions connector;  // endpoint, token, TLS, HA links, drain
  TunnelConfig config;
  std::vector<std::string> allowed_credentials{"*"};
  // Loaded secrets (loaded before the tunnel starts; it reloads them on SIGHUP and when
  // their files change). Null: a store with no sources.
  std::shared_ptr<secrets::SecretStore> secrets;
  std::string metrics_addr;  // "127.0.0.1:PORT"; empty: no listener at all
};

class Tunnel {
 public:
  Tunnel(asio::any_io_executor ex, TunnelOptions options);
  ~Tunnel();

  // Binds the metrics listener if asked for (loopback only; throws otherwise).
  void start();
  asio::awaitable<void> run();
  asio::awaitable<void> stop();
  uint16_t metrics_port() const;
  Connector& connector() { return *connector_; }
  // The catalog as pushed to airlockd: {"servers": [{name, status, error, tools, …}]}.
  std::string catalog_json() const;
  // Why `server` cannot be used with `agent_credential` (empty: none chosen) given the
  // secrets loaded now and --allowed-credentials; empty when it can.
  std::string credential_problem(const UpstreamServer& server, const std::string& agent,
                                 const std::string& agent_credential) const;
  secrets::SecretWatcher* secret_watcher() { return watcher_.get(); }

 private:
  struct ServerState {
    UpstreamServer config;
    std::shared_ptr<UpstreamSession> inventory;
    json::object catalog;  // tools, resources, resourceTemplates, prompts, capabilities
    std::string status = "pending";  // "pending" | "ok" | "unavailable"
    std::string error;
    std::unique_ptr<asio::steady_timer> refresh;  // cancelled to refetch now
    // Optional lists the server answered -32601 for, taken as empty (logged once each).
    std::set<std::string> missing_lists;
  };

  // One agent MCP session (one link stream) with one server.
  struct McpSession {
    std::string server, agent, current_tool;
    std::map<std::string, std::string> tool_of;  // downstream request id -> tool (or method)
    std::shared_ptr<StreamWriter> writer;
    bool ended = false;  // this side of the stream is ended: nothing more is written
  };
  // Ends the session's stream when no request of it is in flight.
  void end_if_idle(McpSession& s);

  void on_stream(std::shared_ptr<LinkStream> stream);
  asio::awaitable<void> serve_mcp(std::shared_ptr<LinkStream> stream, std::string server,
                                  json::object meta);
  asio::awaitable<void> inventory_loop(std::string server);
  asio::awaitable<bool> fetch_catalog(ServerState& st, std::string& error);
  void push_inventory(const std::shared_ptr<Link>& only = nullptr);
  asio::awaitable<HttpResponse> metrics_handler(HttpRequest req);
  // A redaction in bytes bound for airlockd: logged now, sent to airlockd as an event soon.
  void record_leak(const std::string& secret, const std::string& server, const std::string& tool,
                   const std::string& agent, uint64_t count);
  void flush_leaks();
  void on_secrets_reloaded();

  asio::any_io_executor executor_;
  TunnelOptions options_;
  std::unique_ptr<Connector> connector_;
  std::shared_ptr<ChildProcesses> children_;  // every stdio server process
  std::set<std::shared_ptr<McpSession>> mcp_sessions_;
  std::unique_ptr<HttpServer> metrics_;
  std::map<std::string, ServerState> servers_;
  std::unique_ptr<secrets::SecretWatcher> watcher_;
  // Leak events not yet sent: (secret, server, tool, agent) -> count.
  using LeakKey = std::tuple<std::string, std::string, std::string, std::string>;
  // Keeps one events body well under airlockd's 1 MiB limit (names are at most 128 bytes).
  static constexpr size_t kMaxLeakKeys = 1000;
  std::map<LeakKey, uint64_t> leaks_;         // this batch, not yet logged
  std::map<LeakKey, uint64_t> unsent_leaks_;  // logged, waiting for a link
  std::unique_ptr<asio::steady_timer> leak_timer_;
  bool leak_flush_scheduled_ = false;
  uint64_t redactions_total_ = 0;
  bool stopping_ = false;
  uint64_t streams_refused_ = 0;
  uint64_t mcp_streams_ = 0;
  size_t mcp_streams_open_ = 0;
};

// Hello inventory for a tunnel config.
std::vector<proto::InventoryServer> inventory_of(const TunnelConfig& config);

}  // namespace airlock::tunnel
