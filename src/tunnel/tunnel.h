// Tunnel: mcp-tunnel as a library. Builds the hello (kind "tunnel", inventory from
// tunnel.yaml: server names, URLs and credential names — never values), runs a Connector,
// and optionally serves /ready and /metrics on a loopback address.
// It is the MCP service's backend (common/mcp_service.h): each `mcp` stream airlockd opens
// gets its own UpstreamSession with the private server it names, with the credentials the
// tunnel holds. The tunnel keeps a catalog of every server's tools, resources and prompts (its
// own inventory session per server, refreshed on list_changed), which the service pushes to
// airlockd as the inventory.
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
#include "common/mcp_service.h"
#include "common/secrets.h"
#include "common/secrets_watcher.h"
#include "common/stream_contract.h"
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

class Tunnel final : private McpBackend {
 public:
  Tunnel(asio::any_io_executor ex, TunnelOptions options);
  ~Tunnel();

  // Binds the metrics listener if asked for (loopback only; throws otherwise).
  void start();
  asio::awaitable<void> run();
  asio::awaitable<void> stop();
  uint16_t metrics_port() const;
  Connector& connector() { return *connector_; }
  // The catalog as pushed to airlockd: every server with its status, error, tools, ….
  proto::InventoryReport inventory() const override;
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

  // McpBackend: an agent session with one private server.
  std::string refuse(const proto::McpStreamOpen& open) const override;
  size_t max_message(const std::string& server) const override;
  std::shared_ptr<McpBackendSession> open_session(const proto::McpStreamOpen& open, Emit emit,
                                                  End end, std::string& problem) override;
  asio::awaitable<void> inventory_loop(std::string server);
  asio::awaitable<bool> fetch_catalog(ServerState& st, std::string& error);
  // A tool's inputSchema in `server`'s catalog, null when it has none.
  const json::object* tool_schema(const std::string& server, std::string_view tool) const;
  asio::awaitable<HttpResponse> metrics_handler(HttpRequest req);
  void on_secrets_reloaded();

  asio::any_io_executor executor_;
  TunnelOptions options_;
  std::unique_ptr<McpService> service_;  // before connector_: the connector calls into it
  std::unique_ptr<Connector> connector_;
  std::shared_ptr<ChildProcesses> children_;  // every stdio server process
  std::unique_ptr<HttpServer> metrics_;
  std::map<std::string, ServerState> servers_;
  std::unique_ptr<secrets::SecretWatcher> watcher_;
  bool stopping_ = false;
};

// Hello inventory for a tunnel config.
std::vector<proto::InventoryServer> inventory_of(const TunnelConfig& config);

}  // namespace airlock::tunnel
