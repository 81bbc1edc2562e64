#include "controlplane/connector_endpoint.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/json.hpp>

#include "common/log.h"
#include "common/stream_contract.h"
#include "common/token.h"
#include "controlplane/access.h"

namespace airlock::controlplane {
namespace json = boost::json;
using proto::ResetCode;

ConnectorEndpoint::ConnectorEndpoint(asio::any_io_executor ex, const AirlockdConfig& config,
                                     Store& store, ConnectorRegistry& registry, McpGateway& gateway,
                                     Metrics& metrics, Audit audit)
    : executor_(ex),
      config_(config),
      store_(store),
      registry_(registry),
      gateway_(gateway),
      audit_(std::move(audit)),
      links_accepted_(
          metrics.counter("airlock_links_accepted_total", "Connector links accepted.").Add({})),
      links_refused_(
          metrics.counter("airlock_links_refused_total", "Connector upgrades or hellos refused.")
              .Add({})),
      protocol_errors_(metrics
                           .counter("airlock_link_protocol_errors_total",
                                    "Connector links closed for a protocol violation.")
                           .Add({})),
      auth_failures_(metrics
                         .counter("airlock_auth_failures_total",
                                  "Refused or failed authentications, by endpoint.")
                         .Add({{"endpoint", "connect"}})),
      redactions_(metrics
                      .counter("airlock_secret_redactions_total",
                               "Secret occurrences connectors replaced in what they sent.")
                      .Add({})) {}

void ConnectorEndpoint::refused(const HttpRequest& req, const std::string& why) {
  spdlog::warn("refused connector from {}: {}", req.remote, why);
  auth_failures_.Increment();
  audit_(auth_failure(req, "/v1/connect", why));
}

void ConnectorEndpoint::on_stream(const ConnectorRef& connector, const std::string& instance,
                                  std::shared_ptr<LinkStream> stream) {
  const std::string kind = proto::stream_kind_of(stream->meta());
  const auto known = proto::parse_stream_kind(kind);
  if (known == proto::StreamKind::kEvents) {
    spawn_contained(receive_events(connector, stream), "events from " + connector.describe());
    return;
  }
  if (known == proto::StreamKind::kLoad && connector.kind == proto::ConnectorKind::kSandbox) {
    spawn_contained(receive_load(connector, instance, stream), "load from " + connector.describe());
    return;
  }
  if (known != proto::StreamKind::kInventory) {
    spdlog::warn("{} opened a stream of kind '{}'; refused", connector.describe(), kind);
    stream->reset(ResetCode::kRefused,
                  "airlockd accepts only 'inventory', 'events' and (from "
                  "sandboxes) 'load' streams from connectors, not '" +
                      kind + "'");
    return;
  }
  spawn_contained(receive_inventory(connector, stream), "inventory from " + connector.describe());
}

asio::awaitable<void> ConnectorEndpoint::receive_load(ConnectorRef connector, std::string instance,
                                                      std::shared_ptr<LinkStream> stream) {
  auto body = co_await stream->read_all(4096);
  if (!body) co_return;
  proto::SessionLoad load;
  std::string error;
  if (!proto::parse_session_load(*body, load, error)) {
    spdlog::warn("{} sent a load report airlockd cannot use: {}", connector.describe(), error);
    stream->reset(ResetCode::kProtocolError, error);
    co_return;
  }
  registry_.set_load({std::string(proto::to_string(connector.kind)), connector.name}, instance,
                     load.in_use, load.limit);
  co_await stream->write("", true);
}

asio::awaitable<void> ConnectorEndpoint::receive_inventory(ConnectorRef connector,
                                                           std::shared_ptr<LinkStream> stream) {
  auto body = co_await stream->read_all(proto::kMaxInventoryBody);
  if (!body) {
    spdlog::warn("{}: inventory not received: {}", connector.describe(), body.error().message());
    co_return;
  }
  proto::InventoryReport inventory;
  std::string error;
  if (!proto::parse_inventory(*body, inventory, error)) {
    spdlog::warn("{} sent an inventory airlockd cannot use: {}", connector.describe(), error);
    stream->reset(ResetCode::kProtocolError, error);
    co_return;
  }
  gateway_.inventory_updated(connector, std::move(inventory));
  co_await stream->write("", true);
}

// Leak events from a connector: names and counts only (the connector's redactor ran over these
// bytes too). Kept for the audit log.
asio::awaitable<void> ConnectorEndpoint::receive_events(ConnectorRef connector,
                                                        std::shared_ptr<LinkStream> stream) {
  auto body = co_await stream->read_all(proto::kMaxEventsBody);
  if (!body) {
    spdlog::warn("{}: events not received: {}", connector.describe(), body.error().message());
    co_return;
  }
  const auto received = proto::parse_redaction_events(*body);
  for (const auto& r : received.events) {
    AuditRecord e;
    e.type = AuditType::kSecretRedacted;
    e.actor = r.agent;
    e.target = r.tool;
    e.connector = connector.id();
    e.server = r.server;
    e.outcome = "redacted";
    e.redactions = r.count;
    e.detail = json::object{{"secret", r.secret}};
    audit_(std::move(e));
    redactions_.Increment(static_cast<double>(r.count));
    spdlog::warn("{} redacted secret '{}' {} time(s) in what server '{}' returned{}{}",
                 connector.describe(), r.secret, r.count, r.server,
                 r.tool.empty() ? "" : " for '" + r.tool + "'",
                 r.agent.empty() ? "" : " to agent '" + r.agent + "'");
  }
  if (received.malformed) {
    spdlog::warn("{} sent {} malformed event line(s); ignored", connector.describe(),
                 received.malformed);
  }
  co_await stream->write("", true);
}

void ConnectorEndpoint::spawn_contained(asio::awaitable<void> work, std::string what) {
  asio::co_spawn(executor_, std::move(work),
                 [what = std::move(what)](std::exception_ptr e) { log_failure(e, what); });
}

std::optional<HttpResponse> ConnectorEndpoint::check_upgrade(const HttpRequest& req) {
  if (req.path() != "/v1/connect") {
    return HttpResponse::error(
        404, "not_found",
        "no WebSocket endpoint at " + req.path() + "; connectors use /v1/connect");
  }
  if (stopping_) return HttpResponse::error(503, "shutting_down", "airlockd is shutting down");
  const std::string version = req.header("airlock-protocol");
  const std::string ours = std::to_string(proto::kProtocolVersion);
  if (version != ours) {
    links_refused_.Increment();
    spdlog::warn("refused connector from {}: protocol version '{}' (airlockd speaks {})",
                 req.remote, version, ours);
    return HttpResponse::error(426, "version_mismatch",
                               "protocol version mismatch: connector speaks " +
                                   (version.empty() ? "none" : version) + ", airlockd speaks " +
                                   ours + "; run matching Airlock versions");
  }
  auto token = check_bearer(store_, req);
  if (!token || (token->kind != "tunnel" && token->kind != "sandbox")) {
    links_refused_.Increment();
    refused(req, "the token is invalid, revoked, or not a connector's");
    auto r = HttpResponse::error(401, "unauthorized", "the token is invalid or has been revoked");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"airlock\"");
    return r;
  }
  return std::nullopt;
}

asio::awaitable<void> ConnectorEndpoint::serve(HttpRequest req,
                                               std::unique_ptr<MessageTransport> t) {
  auto token = check_bearer(store_, req);
  LinkOptions options;
  options.role = proto::Role::kControlPlane;
  options.limits = config_.connectors.limits;
  options.heartbeat_interval = config_.connectors.heartbeat_interval;
  options.dead_peer_timeout = config_.connectors.dead_peer_timeout;
  auto link = std::make_shared<Link>(std::move(t), options);
  if (!token) {  // revoked between the upgrade check and now
    co_await link->refuse(ResetCode::kUnauthorized, "the token is invalid or has been revoked");
    co_return;
  }
  std::string error;
  auto hello = co_await link->read_hello(error);
  if (!hello) {
    links_refused_.Increment();
    spdlog::warn("{} '{}' from {}: bad hello: {}", token->kind, token->name, req.remote, error);
    co_await link->refuse(hello.error() == Errc::kProtocolVersionMismatch
                              ? ResetCode::kVersionMismatch
                              : ResetCode::kProtocolError,
                          error);
    co_return;
  }
  const std::string kind(proto::to_string(hello->kind));
  if (kind != token->kind || (!hello->name.empty() && hello->name != token->name)) {
    links_refused_.Increment();
    const std::string why = "this token is for " + token->kind + " '" + token->name + "', not " +
                            kind + " '" + (hello->name.empty() ? token->name : hello->name) + "'";
    refused(req, why);
    co_await link->refuse(ResetCode::kUnauthorized, why);
    co_return;
  }
  const ConnectorRegistry::Key key{token->kind, token->name};
  proto::Accept accept;
  accept.connection_id = random_hex(8);
  accept.name = token->name;
  accept.limits = config_.connectors.limits;
  accept.heartbeat_interval = config_.connectors.heartbeat_interval;
  accept.dead_peer_timeout = config_.connectors.dead_peer_timeout;
  link->accept(accept, hello->limits);
  links_accepted_.Increment();
  // Links without an instance (older connectors) are replicas of their own.
  const std::string instance = hello->instance.empty() ? accept.connection_id : hello->instance;
  registry_.add(key,
                LiveConnection{.connection_id = accept.connection_id,
                               .link = link,
                               .version = hello->software,
                               .remote = req.remote,
                               .connected_since_ms = now_unix_ms(),
                               .inventory = hello->inventory,
                               .instance = instance,
                               .sandbox = hello->sandbox,
                               .max_sessions = hello->sandbox ? hello->sandbox->max_sessions : 0});
  (void)store_.record_seen(key.first, key.second, now_unix_ms(), hello->software, req.remote);
  spdlog::info("{} '{}' connected from {} ({}, connection {})", key.first, key.second, req.remote,
               hello->software, accept.connection_id);

  gateway_.connectors_changed();
  const ConnectorRef connector{hello->kind, token->name};
  // Named, not a temporary in the co_await: GCC 12 destroys such temporaries twice.
  Link::StreamHandler handler = [this, connector, instance](std::shared_ptr<LinkStream> s) {
    on_stream(connector, instance, std::move(s));
  };
  const std::string reason = co_await link->run(handler);

  registry_.remove(key, accept.connection_id);
  if (link_closed_) link_closed_();
  gateway_.connectors_changed();
  (void)store_.record_seen(key.first, key.second, now_unix_ms(), hello->software, req.remote);
  if (reason.rfind("protocol error", 0) == 0) {
    protocol_errors_.Increment();
    spdlog::warn("{} '{}' connection {} closed: {}", key.first, key.second, accept.connection_id,
                 reason);
  } else {
    spdlog::info("{} '{}' connection {} closed: {}", key.first, key.second, accept.connection_id,
                 reason);
  }
}

}  // namespace airlock::controlplane
