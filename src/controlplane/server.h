// ControlPlane: airlockd as a library, so that tests start it in-process and main() only parses
// flags. It owns the parts and their lifecycle — the store, the audit log, the metrics
// registry, the connector registry, the MCP gateway — and serves one route table over HTTPS:
// /v1/connect (ConnectorEndpoint), /mcp (McpGateway), /v1/... (AdminApi), /healthz, /readyz
// and /metrics, and the web console at / (Console). Runs on one executor (airlockd's single io
// thread); not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <string>

#include "common/http_server.h"
#include "common/metrics.h"
#include "common/tls.h"
#include "controlplane/admin_api.h"
#include "controlplane/audit_log.h"
#include "controlplane/config.h"
#include "controlplane/connector_endpoint.h"
#include "controlplane/console.h"
#include "controlplane/mcp_gateway.h"
#include "controlplane/registry.h"
#include "controlplane/routes.h"
#include "controlplane/store.h"

namespace airlock::controlplane {

class ControlPlane {
 public:
  ControlPlane(asio::any_io_executor ex, AirlockdConfig config);
  ~ControlPlane();

  // Creates the state directory, opens the store, prepares TLS (self-managed CA when no
  // certificate is configured), ensures an admin token and binds the listener. Writes
  // state_dir/airlockd.url. Throws std::runtime_error with an operator-facing message.
  void start();
  // Serves until shutdown(). co_spawn it on the executor given to the constructor.
  asio::awaitable<void> serve();
  // Stops accepting, sends GOAWAY to every connector and lets open streams finish for up to
  // connectors.drain_timeout. Cancelling it closes the remaining links at once.
  asio::awaitable<void> shutdown();

  uint16_t port() const;
  std::string url() const;  // https://HOST:PORT (http:// with tls.plaintext)
  const tls::ServerCertFiles& certs() const { return certs_; }
  const std::string& admin_token_file() const { return admin_token_file_; }
  const AirlockdConfig& config() const { return config_; }
  ConnectorRegistry& registry() { return registry_; }
  Store& store() { return *store_; }
  McpGateway& gateway() { return *gateway_; }
  // Null when audit.enabled is false.
  AuditLog* audit_log() { return audit_.get(); }
  Metrics& metrics() { return metrics_; }

  // Opens a stream to a live connector of (kind, name), round-robin over its links.
  Result<std::shared_ptr<LinkStream>> open_stream(const std::string& kind,
                                                  const std::string& name,
                                                  std::string_view meta, std::string_view data,
                                                  bool end);

 private:
  asio::awaitable<HttpResponse> handle(HttpRequest req);
  void add_routes();
  void add_metrics();
  // Appends to the audit log when it is on.
  void audit(AuditRecord r);
  HttpResponse readiness() const;
  void ensure_admin_token();

  asio::any_io_executor executor_;
  AirlockdConfig config_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<AuditLog> audit_;
  Metrics metrics_;
  tls::ServerCertFiles certs_;
  std::string admin_token_file_;
  std::unique_ptr<HttpServer> http_;
  ConnectorRegistry registry_;
  std::unique_ptr<McpGateway> gateway_;
  std::unique_ptr<ConnectorEndpoint> connectors_;
  std::unique_ptr<AdminApi> admin_;
  std::unique_ptr<Console> console_;
  RouteTable routes_;
  bool stopping_ = false;
  prometheus::Family<prometheus::Counter>* auth_failures_ = nullptr;
  prometheus::Family<prometheus::Counter>* admin_changes_ = nullptr;
};

}  // namespace airlock::controlplane
