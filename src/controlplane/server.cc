#include "controlplane/server.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>

#include "common/config_util.h"
#include "common/log.h"
#include "common/stream_contract.h"
#include "common/token.h"
#include "controlplane/access.h"

namespace airlock::controlplane {
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

void write_private_file(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + tmp);
    f << data;
  }
  ::chmod(tmp.c_str(), 0600);
  fs::rename(tmp, path);
}

// The stable code of an error answer ({"error": {"code": ...}}), for the audit record.
std::string error_code_of(const HttpResponse& r) {
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return "http_" + std::to_string(r.status);
  auto* e = v.as_object().if_contains("error");
  if (!e || !e->is_object()) return "http_" + std::to_string(r.status);
  auto* c = e->as_object().if_contains("code");
  return c && c->is_string() ? std::string(c->as_string()) : "http_" + std::to_string(r.status);
}

}  // namespace

ControlPlane::ControlPlane(asio::any_io_executor ex, AirlockdConfig config)
    : executor_(ex), config_(std::move(config)) {}

ControlPlane::~ControlPlane() = default;

void ControlPlane::start() {
  std::error_code ec;
  fs::create_directories(config_.state_dir, ec);
  if (ec) {
    throw std::runtime_error("cannot create state_dir " + config_.state_dir + ": " + ec.message());
  }
  ::chmod(config_.state_dir.c_str(), 0700);
  store_ = open_sqlite_store(config_.state_dir + "/airlockd.db");
  if (config_.audit.enabled) {
    audit_ = std::make_unique<AuditLog>(executor_, config_.state_dir + "/audit.db", config_.audit);
    spdlog::info("audit log: {} (record {}){}", audit_->path(), audit_->head().seq,
                 config_.audit.jsonl_file.empty()
                     ? ""
                     : ", also as JSON Lines to " + config_.audit.jsonl_file);
  } else {
    spdlog::warn(
        "audit.enabled is false: calls, admin changes and refused authentications are "
        "not recorded");
  }

  HttpServerOptions http;
  http.host = config_.listen_host;
  http.port = config_.listen_port;
  http.body_limit = config_.max_request_body;
  http.max_ws_message = 2 * size_t{config_.connectors.limits.max_frame_payload} + 1024 * 1024;
  if (config_.tls.plaintext) {
    spdlog::warn("tls.plaintext is set: serving plain HTTP on {} — tokens cross this socket in "
                 "clear; use it only for local experiments",
                 config_.listen_host);
  } else {
    std::string cert = config_.tls.cert_file, key = config_.tls.key_file;
    if (cert.empty()) {
      certs_ = tls::ensure_self_managed_certs(config_.state_dir, config_.tls.hostnames);
      cert = certs_.cert_file;
      key = certs_.key_file;
      spdlog::info("{} airlockd's CA: {}", certs_.created ? "created" : "using", certs_.ca_file);
      spdlog::info("CA fingerprint (for --pin-sha256): {}", certs_.ca_fingerprint);
    } else {
      certs_.cert_file = cert;
      certs_.key_file = key;
    }
    http.tls = tls::make_server_context(cert, key);
  }
  ensure_admin_token();

  if (config_.tools) {
    std::vector<std::pair<std::string, std::string>> rows;
    for (const auto& b : *config_.tools) {
      rows.emplace_back(b.name, json::serialize(binding_to_json(b)));
    }
    if (!store_->replace_bindings(rows)) throw std::runtime_error("cannot store tool bindings");
    spdlog::info("applied {} tool binding(s) from the config file", rows.size());
  }
  McpGateway::Host host;
  host.store = store_.get();
  host.open_stream = [this](const ConnectorRef& connector, std::string_view meta) {
    return open_stream(std::string(proto::to_string(connector.kind)), connector.name, meta, {},
                       false);
  };
  host.is_live = [this](const ConnectorRef& connector) {
    const auto* c = registry_.connections({std::string(proto::to_string(connector.kind)),
                                           connector.name});
    return c && !c->empty();
  };
  host.audit = [this](AuditRecord r) { audit(std::move(r)); };
  host.metrics = &metrics_;
  gateway_ = std::make_unique<McpGateway>(executor_, config_, std::move(host));
  gateway_->start();
  connectors_ =
      std::make_unique<ConnectorEndpoint>(executor_, config_, *store_, registry_, *gateway_,
                                          metrics_, [this](AuditRecord r) { audit(std::move(r)); });
  admin_ =
      std::make_unique<AdminApi>(executor_, config_, *store_, registry_, *gateway_, audit_.get());
  console_ =
      std::make_unique<Console>(config_, *store_, [this](AuditRecord r) { audit(std::move(r)); });
  add_routes();
  add_metrics();

  http_ = std::make_unique<HttpServer>(
      executor_, http, [this](HttpRequest r) { return handle(std::move(r)); },
      [this](const HttpRequest& r) { return connectors_->check_upgrade(r); },
      [this](HttpRequest r, std::unique_ptr<MessageTransport> t) {
        return connectors_->serve(std::move(r), std::move(t));
      });
  http_->listen();
  std::vector<std::string> own_names = config_.tls.hostnames;
  own_names.push_back(config_.listen_host);
  gateway_->set_origin_policy(OriginPolicy(config_.mcp.allowed_origins, own_names, port(),
                                           config_.tls.plaintext ? "http" : "https"));
  ConnectorTrust trust;
  if (!certs_.ca_file.empty()) {
    std::ifstream ca(certs_.ca_file);
    trust.ca_pem.assign(std::istreambuf_iterator<char>(ca), std::istreambuf_iterator<char>());
    trust.pin_sha256 = certs_.ca_fingerprint;
  }
  console_->set_endpoint(url(), std::move(trust));
  // Written aside and renamed into place: whoever sees the file (the CLI, scripts) sees it whole.
  const std::string url_file = config_.state_dir + "/airlockd.url";
  std::ofstream(url_file + ".tmp", std::ios::trunc) << url() << "\n";
  std::filesystem::rename(url_file + ".tmp", url_file);
  spdlog::info("airlockd {} listening on {}", AIRLOCK_VERSION, url());
}

void ControlPlane::ensure_admin_token() {
  admin_token_file_ = config_.state_dir + "/admin.token";
  if (fs::exists(admin_token_file_)) {
    const std::string token = read_first_line(admin_token_file_);
    if (auto id = token_id(token)) {
      auto rec = store_->find_token(*id);
      if (rec && rec->kind == "admin" && !rec->revoked && verify_token(token, rec->hash)) return;
    }
    spdlog::warn("{} does not hold a valid admin token; minting a new one", admin_token_file_);
  }
  (void)store_->revoke_tokens("admin", "admin");
  const MintedToken minted = mint_token();
  TokenRecord rec{.id = minted.id, .kind = "admin", .name = "admin",
                  .hash = hash_token(minted.token), .created_at_ms = now_unix_ms()};
  if (!store_->add_token(rec)) throw std::runtime_error("cannot store the admin token");
  write_private_file(admin_token_file_, minted.token + "\n");
  spdlog::info("admin token written to {} (mode 0600)", admin_token_file_);
}

asio::awaitable<void> ControlPlane::serve() { co_await http_->serve(); }

uint16_t ControlPlane::port() const { return http_->port(); }

std::string ControlPlane::url() const {
  std::string host = config_.listen_host;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return std::string(config_.tls.plaintext ? "http://" : "https://") + host + ":" +
         std::to_string(port());
}

asio::awaitable<void> ControlPlane::shutdown() {
  stopping_ = true;
  if (connectors_) connectors_->stop_accepting();
  http_->stop();
  if (gateway_) gateway_->stop();
  auto links = registry_.all_links();
  spdlog::info("shutting down: draining {} connector link(s) for up to {} ms", links.size(),
               config_.connectors.drain_timeout.count());
  for (auto& link : links) {
    asio::co_spawn(executor_,
                   link->drain(config_.connectors.drain_timeout, "airlockd is shutting down"),
                   [](std::exception_ptr e) { log_failure(e, "draining a connector link"); });
  }
  // Woken as each link closes (not polled), until none is left or the grace has passed.
  const auto deadline = std::chrono::steady_clock::now() + config_.connectors.drain_timeout +
                        std::chrono::seconds(2);
  asio::steady_timer drained(executor_, deadline);
  connectors_->on_link_closed([&drained] { drained.cancel(); });
  while (!registry_.all_links().empty() && std::chrono::steady_clock::now() < deadline) {
    drained.expires_at(deadline);
    co_await drained.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  connectors_->on_link_closed({});
}

Result<std::shared_ptr<LinkStream>> ControlPlane::open_stream(const std::string& kind,
                                                              const std::string& name,
                                                              std::string_view meta,
                                                              std::string_view data, bool end) {
  auto link = registry_.pick({kind, name});
  if (!link) return make_error_code(Errc::kNotFound);
  return link->open(meta, data, end);
}

void ControlPlane::audit(AuditRecord r) {
  if (audit_) audit_->append(std::move(r));
}

void ControlPlane::add_routes() {
  routes_.add("GET", "/healthz", Access::kPublic,
              [this](HttpRequest, RouteContext) -> asio::awaitable<HttpResponse> {
                co_return HttpResponse::json(stopping_ ? 503 : 200, stopping_
                                                                        ? R"({"status":"stopping"})"
                                                                        : R"({"status":"ok"})");
              });
  routes_.add("GET", "/readyz", Access::kPublic,
              [this](HttpRequest, RouteContext) -> asio::awaitable<HttpResponse> {
                co_return readiness();
              });
  routes_.add("GET", "/metrics", Access::kAdmin,
              [this](HttpRequest, RouteContext) -> asio::awaitable<HttpResponse> {
                co_return metrics_.response();
              });
  // Every method: the gateway answers the ones /mcp does not take in JSON-RPC's terms.
  for (const char* method : {"GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"}) {
    routes_.add(method, "/mcp", Access::kPublic,
                [this](HttpRequest r, RouteContext) { return gateway_->handle(std::move(r)); });
  }
  routes_.add("GET", "/v1/connect", Access::kPublic,
              [](HttpRequest, RouteContext) -> asio::awaitable<HttpResponse> {
                co_return HttpResponse::error(
                    400, "websocket_required",
                    "/v1/connect expects a WebSocket upgrade from a connector");
              });
  admin_->add_routes(routes_);
  console_->add_routes(routes_);
}

HttpResponse ControlPlane::readiness() const {
  // Ready: serving, the database answers, and the audit log keeps up.
  json::object checks;
  bool ready = !stopping_;
  checks["serving"] = stopping_ ? "stopping" : "ok";
  const bool db_ok = store_->schema_version() > 0;
  checks["database"] = db_ok ? "ok" : "unreadable";
  ready = ready && db_ok;
  if (audit_) {
    const bool keeping_up = audit_->backlog() < config_.audit.max_backlog;
    checks["audit"] = keeping_up ? "ok" : "backlog full";
    ready = ready && keeping_up;
  } else {
    checks["audit"] = "off";
  }
  return HttpResponse::json(ready ? 200 : 503,
                            json::serialize(json::object{{"ready", ready}, {"checks", checks}}));
}

void ControlPlane::add_metrics() {
  using prometheus::MetricType;
  metrics_.gauge("airlock_build_info", "Build version.").Add({{"version", AIRLOCK_VERSION}}).Set(1);
  auth_failures_ = &metrics_.counter("airlock_auth_failures_total",
                                     "Refused or failed authentications, by endpoint.");
  admin_changes_ = &metrics_.counter("airlock_admin_changes_total",
                                     "Changes through the admin API, by outcome.");
  metrics_.read_at_scrape(
      "airlock_resources", kGauge, "Tunnels and sandboxes, by kind and status.", [this] {
        std::vector<Metrics::Sample> out;
        for (const std::string kind : {"tunnel", "sandbox"}) {
          double active = 0, disconnected = 0;
          for (const auto& r : store_->list_resources(kind)) {
            const auto* c = registry_.connections({kind, r.name});
            (c && !c->empty() ? active : disconnected) += 1;
          }
          out.push_back({{{"kind", kind}, {"status", "Active"}}, active});
          out.push_back({{{"kind", kind}, {"status", "Disconnected"}}, disconnected});
        }
        return out;
      });
  metrics_.read_at_scrape(
      "airlock_resource_links", kGauge, "Live links of each tunnel and sandbox.", [this] {
        std::vector<Metrics::Sample> out;
        for (const std::string kind : {"tunnel", "sandbox"}) {
          for (const auto& r : store_->list_resources(kind)) {
            const auto* c = registry_.connections({kind, r.name});
            out.push_back(
                {{{"kind", kind}, {"name", r.name}}, static_cast<double>(c ? c->size() : 0)});
          }
        }
        return out;
      });
  metrics_.read_at_scrape("airlock_links", kGauge, "Live connector links.",
                          [this] { return static_cast<double>(registry_.all_links().size()); });
  metrics_.read_at_scrape("airlock_streams", kGauge, "Open streams over all links.", [this] {
    double n = 0;
    for (const auto& link : registry_.all_links()) n += static_cast<double>(link->stream_count());
    return n;
  });
  metrics_.read_at_scrape("airlock_mcp_sessions", kGauge, "Open agent MCP sessions.",
                          [this] { return static_cast<double>(gateway_->session_count()); });
  if (audit_) {
    metrics_.read_at_scrape("airlock_audit_backlog", kGauge,
                            "Audit records waiting for the writer.",
                            [this] { return static_cast<double>(audit_->backlog()); });
    metrics_.read_at_scrape("airlock_audit_records_written_total", kCounter,
                            "Audit records written.",
                            [this] { return static_cast<double>(audit_->written()); });
    metrics_.read_at_scrape("airlock_audit_records_dropped_total", kCounter,
                            "Audit records dropped because the backlog was full.",
                            [this] { return static_cast<double>(audit_->dropped()); });
    metrics_.read_at_scrape("airlock_audit_write_failures_total", kCounter,
                            "Audit records the database refused.",
                            [this] { return static_cast<double>(audit_->write_failures()); });
  }
}

asio::awaitable<HttpResponse> ControlPlane::handle(HttpRequest req) {
  const std::string path = req.path();
  auto match = routes_.match(req.method, path);
  if (!match.route) {
    if (!match.allowed.empty()) co_return method_not_allowed(match.allowed);
    co_return HttpResponse::error(404, "not_found", "no such endpoint: " + path);
  }
  RouteContext ctx{std::move(match.params), ""};
  const bool change = match.route->access == Access::kAdmin && req.method != "GET";
  if (match.route->access == Access::kAdmin && req.header("authorization").empty()) {
    // A browser signed in to the console: its session cookie, and for a change the session's
    // CSRF token from a page of this origin.
    switch (console_->check_session(req, change)) {
      case Console::SessionCheck::kValid:
        ctx.actor = "console";
        break;
      case Console::SessionCheck::kBadCsrf:
      case Console::SessionCheck::kBadOrigin: {
        auth_failures_->Add({{"endpoint", "console"}}).Increment();
        audit(auth_failure(req, "admin API",
                           "a console session without its CSRF token, or "
                           "from another site"));
        auto r = HttpResponse::error(403, "csrf",
                                     "a change from the console must come from its own page "
                                     "with the session's X-CSRF-Token");
        add_console_headers(r);
        co_return r;
      }
      case Console::SessionCheck::kNone:
        break;
    }
  }
  if (match.route->access == Access::kAdmin && ctx.actor.empty()) {
    auto token = check_bearer(*store_, req);
    if (!token || token->kind != "admin") {
      auth_failures_->Add({{"endpoint", "admin"}}).Increment();
      audit(auth_failure(
          req, "admin API",
          token ? "a " + token->kind + "'s token, not the admin's" : "no valid admin token"));
      auto r = HttpResponse::error(401, "unauthorized",
                                   "the admin API needs 'Authorization: Bearer <admin token>' "
                                   "(the token is in airlockd's state_dir/admin.token)");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"airlock-admin\"");
      co_return r;
    }
    ctx.actor = "admin";
  }
  if (!change) {
    // Named: GCC 12 destroys temporaries in a co_await expression twice.
    auto op = match.route->handler(std::move(req), std::move(ctx));
    HttpResponse r = co_await std::move(op);
    co_return r;
  }

  // A change: recorded whatever its outcome, without its body (which may carry a new token).
  AuditRecord rec;
  rec.type = AuditType::kAdmin;
  rec.actor = ctx.actor;
  rec.method = req.method + " " + path;
  rec.target = path.substr(std::min<size_t>(path.size(), 4));  // without "/v1/"
  rec.remote = req.remote;
  rec.bytes_in = req.body.size();
  const auto started = std::chrono::steady_clock::now();
  auto op = match.route->handler(std::move(req), std::move(ctx));
  HttpResponse r = co_await std::move(op);
  rec.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
  rec.outcome = r.status < 400 ? "ok" : "error";
  if (r.status >= 400) rec.error_class = error_code_of(r);
  rec.detail = json::object{{"status", r.status}};
  admin_changes_->Add({{"outcome", rec.outcome}}).Increment();
  audit(std::move(rec));
  co_return r;
}

}  // namespace airlock::controlplane
