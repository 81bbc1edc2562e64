// ControlPlane: airlockd as a library — HTTPS listener, connector endpoint (/v1/connect),
// admin API (/v1/...), /healthz and /metrics — so that tests start it in-process and main()
// only parses flags. Runs on one executor (airlockd's single io thread); not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>

#include "common/http_server.h"
#include "common/tls.h"
#include "controlplane/config.h"
#include "controlplane/mcp_gateway.h"
#include "controlplane/registry.h"
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

  // Opens a stream to a live connector of (kind, name), round-robin over its links.
  Result<std::shared_ptr<LinkStream>> open_stream(const std::string& kind,
                                                  const std::string& name,
                                                  std::string_view meta, std::string_view data,
                                                  bool end);

 private:
  asio::awaitable<HttpResponse> handle(HttpRequest req);
  std::optional<HttpResponse> check_upgrade(const HttpRequest& req);
  asio::awaitable<void> serve_connector(HttpRequest req, std::unique_ptr<MessageTransport> t);
  Result<TokenRecord> authenticate(const HttpRequest& req, bool admin);
  HttpResponse resource_api(const HttpRequest& req, const std::string& kind,
                            const std::string& name, const std::string& action);
  std::string resource_json(const ResourceRecord& r);
  std::string status_json(const std::string& kind);
  std::string metrics_text();
  HttpResponse tools_api(const HttpRequest& req);
  HttpResponse agents_api(const HttpRequest& req, const std::string& name,
                          const std::string& action);
  HttpResponse events_api(const HttpRequest& req);
  HttpResponse mint_agent_key(const std::string& name);
  // A stream a connector opened: its inventory, its redaction events, or (sandboxes) its load;
  // anything else is refused.
  void on_connector_stream(const ConnectorRef& connector, const std::string& instance,
                           std::shared_ptr<LinkStream> stream);
  asio::awaitable<void> receive_load(ConnectorRef connector, std::string instance,
                                     std::shared_ptr<LinkStream> stream);
  asio::awaitable<void> receive_inventory(ConnectorRef connector,
                                          std::shared_ptr<LinkStream> stream);
  asio::awaitable<void> receive_events(ConnectorRef connector, std::shared_ptr<LinkStream> stream);
  // Runs `work` on the io thread; an exception it throws is logged with `what`, and reaches no
  // other caller.
  void spawn_contained(asio::awaitable<void> work, std::string what);
  void ensure_admin_token();

  asio::any_io_executor executor_;
  AirlockdConfig config_;
  std::unique_ptr<Store> store_;
  tls::ServerCertFiles certs_;
  std::string admin_token_file_;
  std::unique_ptr<HttpServer> http_;
  ConnectorRegistry registry_;
  std::unique_ptr<McpGateway> gateway_;
  bool stopping_ = false;
  uint64_t links_accepted_ = 0;
  uint64_t links_refused_ = 0;
  uint64_t protocol_errors_ = 0;
};

// "2026-11-27T14:08:21.123Z"
std::string format_time_ms(int64_t unix_ms);

}  // namespace airlock::controlplane
