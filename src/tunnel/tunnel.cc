#include "tunnel/tunnel.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/json.hpp>

#include <spdlog/spdlog.h>

#include <sstream>
#include <stdexcept>

namespace airlock::tunnel {

std::vector<proto::InventoryServer> inventory_of(const TunnelConfig& config) {
  std::vector<proto::InventoryServer> out;
  for (const auto& s : config.servers) {
    out.push_back({.name = s.name, .url = s.url, .credentials = s.credentials, .tools = {}});
  }
  return out;
}

Tunnel::Tunnel(asio::any_io_executor ex, TunnelOptions options)
    : executor_(ex), options_(std::move(options)) {
  auto& hello = options_.connector.hello;
  hello.kind = proto::ConnectorKind::kTunnel;
  hello.name = options_.config.name;
  hello.software = "mcp-tunnel/" AIRLOCK_VERSION;
  hello.inventory = inventory_of(options_.config);
  options_.connector.dial.user_agent = hello.software;
  connector_ = std::make_unique<Connector>(
      ex, options_.connector, [this](std::shared_ptr<LinkStream> s) { on_stream(std::move(s)); });
}

Tunnel::~Tunnel() = default;

void Tunnel::start() {
  if (options_.metrics_addr.empty()) return;
  const auto colon = options_.metrics_addr.rfind(':');
  HttpServerOptions http;
  http.host = colon == std::string::npos ? "" : options_.metrics_addr.substr(0, colon);
  if (http.host.size() > 2 && http.host.front() == '[') http.host = http.host.substr(1, http.host.size() - 2);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(http.host, ec);
  if (ec || !addr.is_loopback()) {
    throw std::runtime_error("--metrics-addr must be a loopback address such as 127.0.0.1:9464 "
                             "(connectors listen on nothing reachable from the network)");
  }
  try {
    http.port = static_cast<uint16_t>(std::stoul(options_.metrics_addr.substr(colon + 1)));
  } catch (const std::exception&) {
    throw std::runtime_error("--metrics-addr port is not a number: " + options_.metrics_addr);
  }
  metrics_ = std::make_unique<HttpServer>(executor_, http,
                                          [this](HttpRequest r) { return metrics_handler(std::move(r)); });
  metrics_->listen();
  spdlog::info("metrics and readiness on http://{}:{}/metrics and /ready", http.host,
               metrics_->port());
}

uint16_t Tunnel::metrics_port() const { return metrics_ ? metrics_->port() : 0; }

asio::awaitable<void> Tunnel::run() {
  std::string allowed;
  for (const auto& p : options_.allowed_credentials) allowed += (allowed.empty() ? "" : ", ") + p;
  spdlog::info("mcp-tunnel {} starting: {} server(s) configured, {} link(s), allowed "
               "credentials: {}",
               AIRLOCK_VERSION, options_.config.servers.size(),
               options_.connector.ha_connections, allowed);
  if (metrics_) asio::co_spawn(executor_, metrics_->serve(), asio::detached);
  co_await connector_->run();
}

asio::awaitable<void> Tunnel::stop() {
  if (metrics_) metrics_->stop();
  co_await connector_->stop();
}

void Tunnel::on_stream(std::shared_ptr<LinkStream> stream) {
  std::string kind = "(none)";
  boost::system::error_code ec;
  auto meta = boost::json::parse(stream->meta(), ec);
  if (!ec && meta.is_object()) {
    if (auto* k = meta.as_object().if_contains("kind"); k && k->is_string()) {
      kind = std::string(k->as_string());
    }
  }
  ++streams_refused_;
  spdlog::warn("refused stream {} of unsupported kind '{}'", stream->id(), kind);
  stream->reset(proto::ResetCode::kRefused, "mcp-tunnel does not serve stream kind '" + kind + "'");
}

asio::awaitable<HttpResponse> Tunnel::metrics_handler(HttpRequest req) {
  const auto& st = connector_->stats();
  if (req.path() == "/ready") {
    if (connector_->ready()) co_return HttpResponse::json(200, R"({"ready":true})");
    co_return HttpResponse::json(
        503, boost::json::serialize(boost::json::object{{"ready", false},
                                                        {"last_error", st.last_error}}));
  }
  if (req.path() == "/metrics") {
    std::ostringstream m;
    m << "# HELP airlock_tunnel_links_active Established links to airlockd.\n"
      << "# TYPE airlock_tunnel_links_active gauge\n"
      << "airlock_tunnel_links_active " << st.active_links << "\n"
      << "# HELP airlock_tunnel_connects_total Links established.\n"
      << "# TYPE airlock_tunnel_connects_total counter\n"
      << "airlock_tunnel_connects_total " << st.connects << "\n"
      << "# HELP airlock_tunnel_dial_failures_total Attempts that did not establish a link.\n"
      << "# TYPE airlock_tunnel_dial_failures_total counter\n"
      << "airlock_tunnel_dial_failures_total " << st.dial_failures << "\n"
      << "# HELP airlock_tunnel_streams_refused_total Streams of a kind this tunnel does not serve.\n"
      << "# TYPE airlock_tunnel_streams_refused_total counter\n"
      << "airlock_tunnel_streams_refused_total " << streams_refused_ << "\n";
    auto r = HttpResponse::json(200, m.str());
    r.content_type = "text/plain; version=0.0.4";
    co_return r;
  }
  co_return HttpResponse::error(404, "not_found", "only /ready and /metrics are served here");
}

}  // namespace airlock::tunnel
