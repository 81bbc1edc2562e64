// Tunnel: mcp-tunnel as a library. Builds the hello (kind "tunnel", inventory from
// tunnel.yaml: server names, URLs and credential names — never values), runs a Connector,
// and optionally serves /ready and /metrics on a loopback address. Streams airlockd opens are
// answered by the stream handler; mcp-tunnel refuses stream kinds it does not serve.
// One executor; not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>
#include <vector>

#include "common/connector.h"
#include "common/http_server.h"
#include "tunnel/config.h"

namespace airlock::tunnel {

struct TunnelOptions {
  ConnectorOptions connector;  // endpoint, token, TLS, HA links, drain
  TunnelConfig config;
  std::vector<std::string> allowed_credentials{"*"};
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

 private:
  void on_stream(std::shared_ptr<LinkStream> stream);
  asio::awaitable<HttpResponse> metrics_handler(HttpRequest req);

  asio::any_io_executor executor_;
  TunnelOptions options_;
  std::unique_ptr<Connector> connector_;
  std::unique_ptr<HttpServer> metrics_;
  uint64_t streams_refused_ = 0;
};

// Hello inventory for a tunnel config.
std::vector<proto::InventoryServer> inventory_of(const TunnelConfig& config);

}  // namespace airlock::tunnel
