// ConnectorEndpoint: /v1/connect, where tunnels and sandbox agents dial in. Checks the upgrade
// (protocol version, token), runs each link's handshake and life, and takes the streams a
// connector opens: its inventory, its redaction events and (sandboxes) its load. Live links go
// into the ConnectorRegistry; the gateway hears of every change.
// Owned by ControlPlane; runs on airlockd's io thread; not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/http_server.h"
#include "common/link.h"
#include "common/metrics.h"
#include "controlplane/audit_chain.h"
#include "controlplane/config.h"
#include "controlplane/mcp_gateway.h"
#include "controlplane/registry.h"
#include "controlplane/store.h"

namespace airlock::controlplane {

class ConnectorEndpoint {
 public:
  using Audit = std::function<void(AuditRecord)>;

  ConnectorEndpoint(asio::any_io_executor ex, const AirlockdConfig& config, Store& store,
                    ConnectorRegistry& registry, McpGateway& gateway, Metrics& metrics,
                    Audit audit);

  // Answers an upgrade that is refused (wrong path, version or token, or shutting down);
  // nullopt lets the WebSocket handshake go on.
  std::optional<HttpResponse> check_upgrade(const HttpRequest& req);
  // One connector's link, from its hello until it closes. Cancelling it closes the link.
  asio::awaitable<void> serve(HttpRequest req, std::unique_ptr<MessageTransport> t);
  // Refuse new links from now on.
  void stop_accepting() { stopping_ = true; }
  // Called each time a link has closed and left the registry (shutdown waits on it).
  void on_link_closed(std::function<void()> f) { link_closed_ = std::move(f); }

 private:
  // A stream a connector opened; anything but its inventory, events or (sandboxes) load is
  // refused.
  void on_stream(const ConnectorRef& connector, const std::string& instance,
                 std::shared_ptr<LinkStream> stream);
  asio::awaitable<void> receive_load(ConnectorRef connector, std::string instance,
                                     std::shared_ptr<LinkStream> stream);
  asio::awaitable<void> receive_inventory(ConnectorRef connector,
                                          std::shared_ptr<LinkStream> stream);
  asio::awaitable<void> receive_events(ConnectorRef connector, std::shared_ptr<LinkStream> stream);
  // Runs `work` on the io thread; an exception it throws is logged with `what`, and reaches no
  // other caller.
  void spawn_contained(asio::awaitable<void> work, std::string what);
  void refused(const HttpRequest& req, const std::string& why);

  asio::any_io_executor executor_;
  const AirlockdConfig& config_;
  Store& store_;
  ConnectorRegistry& registry_;
  McpGateway& gateway_;
  Audit audit_;
  bool stopping_ = false;
  std::function<void()> link_closed_;
  prometheus::Counter& links_accepted_;
  prometheus::Counter& links_refused_;
  prometheus::Counter& protocol_errors_;
  prometheus::Counter& auth_failures_;
  prometheus::Counter& redactions_;
};

}  // namespace airlock::controlplane
