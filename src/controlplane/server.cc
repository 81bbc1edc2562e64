#include "controlplane/server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/config_util.h"
#include "common/stream_contract.h"
#include "common/token.h"

namespace airlock::controlplane {
namespace fs = std::filesystem;
namespace json = boost::json;
using proto::ResetCode;

std::string format_time_ms(int64_t unix_ms) {
  if (unix_ms <= 0) return "";
  const std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(unix_ms % 1000));
  return out;
}

namespace {

std::string bearer_of(const HttpRequest& req) {
  const std::string h = req.header("authorization");
  constexpr std::string_view kPrefix = "Bearer ";
  if (h.size() <= kPrefix.size() || h.compare(0, kPrefix.size(), kPrefix) != 0) return {};
  return h.substr(kPrefix.size());
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

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

HttpResponse method_not_allowed(std::string_view allow) {
  auto r = HttpResponse::error(405, "method_not_allowed",
                               "method not allowed here; allowed: " + std::string(allow));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

int64_t steady_to_unix_ms(std::chrono::steady_clock::time_point t) {
  const auto age = std::chrono::steady_clock::now() - t;
  return now_unix_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(age).count();
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
  gateway_ = std::make_unique<McpGateway>(executor_, config_, std::move(host));
  gateway_->start();

  http_ = std::make_unique<HttpServer>(
      executor_, http, [this](HttpRequest r) { return handle(std::move(r)); },
      [this](const HttpRequest& r) { return check_upgrade(r); },
      [this](HttpRequest r, std::unique_ptr<MessageTransport> t) {
        return serve_connector(std::move(r), std::move(t));
      });
  http_->listen();
  std::vector<std::string> own_names = config_.tls.hostnames;
  own_names.push_back(config_.listen_host);
  gateway_->set_origin_policy(OriginPolicy(config_.mcp.allowed_origins, own_names, port(),
                                           config_.tls.plaintext ? "http" : "https"));
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
  http_->stop();
  if (gateway_) gateway_->stop();
  auto links = registry_.all_links();
  spdlog::info("shutting down: draining {} connector link(s) for up to {} ms", links.size(),
               config_.connectors.drain_timeout.count());
  for (auto& link : links) {
    asio::co_spawn(executor_,
                   link->drain(config_.connectors.drain_timeout, "airlockd is shutting down"),
                   asio::detached);
  }
  asio::steady_timer poll(executor_);
  const auto deadline = std::chrono::steady_clock::now() + config_.connectors.drain_timeout +
                        std::chrono::seconds(2);
  while (!registry_.all_links().empty() && std::chrono::steady_clock::now() < deadline) {
    poll.expires_after(std::chrono::milliseconds(20));
    co_await poll.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

void ControlPlane::on_connector_stream(const ConnectorRef& connector, const std::string& instance,
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
    stream->reset(ResetCode::kRefused, "airlockd accepts only 'inventory', 'events' and (from "
                                       "sandboxes) 'load' streams from connectors, not '" +
                                           kind + "'");
    return;
  }
  spawn_contained(receive_inventory(connector, stream), "inventory from " + connector.describe());
}

asio::awaitable<void> ControlPlane::receive_load(ConnectorRef connector, std::string instance,
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

asio::awaitable<void> ControlPlane::receive_inventory(ConnectorRef connector,
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
  gateway_->inventory_updated(connector, std::move(inventory));
  co_await stream->write("", true);
}

// Leak events from a connector: names and counts only (the connector's redactor ran over these
// bytes too). Kept for the audit log.
asio::awaitable<void> ControlPlane::receive_events(ConnectorRef connector,
                                                   std::shared_ptr<LinkStream> stream) {
  auto body = co_await stream->read_all(proto::kMaxEventsBody);
  if (!body) {
    spdlog::warn("{}: events not received: {}", connector.describe(), body.error().message());
    co_return;
  }
  const auto received = proto::parse_redaction_events(*body);
  for (const auto& r : received.events) {
    EventRecord e;
    e.type = "secret_redacted";
    e.agent = r.agent;
    e.tool = r.tool;
    json::object detail{{"secret", r.secret}, {"server", r.server}, {"count", r.count}};
    detail[proto::to_string(connector.kind)] = connector.name;
    e.detail = json::serialize(detail);
    if (!store_->add_event(e)) spdlog::error("could not record a redaction event");
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

void ControlPlane::spawn_contained(asio::awaitable<void> work, std::string what) {
  asio::co_spawn(executor_, std::move(work), [what = std::move(what)](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("{} failed: {}", what, ex.what());
    }
  });
}

Result<TokenRecord> ControlPlane::authenticate(const HttpRequest& req, bool admin) {
  const std::string token = bearer_of(req);
  auto id = token_id(token);
  if (!id) return make_error_code(Errc::kUnauthorized);
  auto rec = store_->find_token(*id);
  if (!rec || rec->revoked || !verify_token(token, rec->hash)) {
    return make_error_code(Errc::kUnauthorized);
  }
  if ((rec->kind == "admin") != admin) return make_error_code(Errc::kUnauthorized);
  return rec;
}

Result<std::shared_ptr<LinkStream>> ControlPlane::open_stream(const std::string& kind,
                                                              const std::string& name,
                                                              std::string_view meta,
                                                              std::string_view data, bool end) {
  auto link = registry_.pick({kind, name});
  if (!link) return make_error_code(Errc::kNotFound);
  return link->open(meta, data, end);
}

std::optional<HttpResponse> ControlPlane::check_upgrade(const HttpRequest& req) {
  if (req.path() != "/v1/connect") {
    return HttpResponse::error(404, "not_found", "no WebSocket endpoint at " + req.path() +
                                                     "; connectors use /v1/connect");
  }
  if (stopping_) return HttpResponse::error(503, "shutting_down", "airlockd is shutting down");
  const std::string version = req.header("airlock-protocol");
  const std::string ours = std::to_string(proto::kProtocolVersion);
  if (version != ours) {
    ++links_refused_;
    spdlog::warn("refused connector from {}: protocol version '{}' (airlockd speaks {})",
                 req.remote, version, ours);
    return HttpResponse::error(
        426, "version_mismatch",
        "protocol version mismatch: connector speaks " + (version.empty() ? "none" : version) +
            ", airlockd speaks " + ours + "; run matching Airlock versions");
  }
  auto token = authenticate(req, /*admin=*/false);
  if (!token || (token->kind != "tunnel" && token->kind != "sandbox")) {
    ++links_refused_;
    spdlog::warn("refused connector from {}: invalid or revoked token", req.remote);
    auto r = HttpResponse::error(401, "unauthorized", "the token is invalid or has been revoked");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"airlock\"");
    return r;
  }
  return std::nullopt;
}

asio::awaitable<void> ControlPlane::serve_connector(HttpRequest req,
                                                    std::unique_ptr<MessageTransport> t) {
  auto token = authenticate(req, false);
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
    ++links_refused_;
    spdlog::warn("{} '{}' from {}: bad hello: {}", token->kind, token->name, req.remote, error);
    co_await link->refuse(error.rfind("protocol version mismatch", 0) == 0
                              ? ResetCode::kVersionMismatch
                              : ResetCode::kProtocolError,
                          error);
    co_return;
  }
  const std::string kind(proto::to_string(hello->kind));
  if (kind != token->kind || (!hello->name.empty() && hello->name != token->name)) {
    ++links_refused_;
    const std::string why = "this token is for " + token->kind + " '" + token->name +
                            "', not " + kind + " '" +
                            (hello->name.empty() ? token->name : hello->name) + "'";
    spdlog::warn("refused connector from {}: {}", req.remote, why);
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
  ++links_accepted_;
  // Links without an instance (older connectors) are replicas of their own.
  const std::string instance = hello->instance.empty() ? accept.connection_id : hello->instance;
  registry_.add(key, LiveConnection{.connection_id = accept.connection_id,
                                    .link = link,
                                    .version = hello->software,
                                    .remote = req.remote,
                                    .connected_since_ms = now_unix_ms(),
                                    .inventory = hello->inventory,
                                    .instance = instance,
                                    .sandbox = hello->sandbox,
                                    .max_sessions = hello->sandbox ? hello->sandbox->max_sessions : 0});
  (void)store_->record_seen(key.first, key.second, now_unix_ms(), hello->software, req.remote);
  spdlog::info("{} '{}' connected from {} ({}, connection {})", key.first, key.second,
               req.remote, hello->software, accept.connection_id);

  gateway_->connectors_changed();
  const ConnectorRef connector{hello->kind, token->name};
  // Named, not a temporary in the co_await: GCC 12 destroys such temporaries twice.
  Link::StreamHandler on_stream = [this, connector, instance](std::shared_ptr<LinkStream> s) {
    on_connector_stream(connector, instance, std::move(s));
  };
  const std::string reason = co_await link->run(on_stream);

  registry_.remove(key, accept.connection_id);
  gateway_->connectors_changed();
  (void)store_->record_seen(key.first, key.second, now_unix_ms(), hello->software, req.remote);
  if (reason.rfind("protocol error", 0) == 0) {
    ++protocol_errors_;
    spdlog::warn("{} '{}' connection {} closed: {}", key.first, key.second, accept.connection_id,
                 reason);
  } else {
    spdlog::info("{} '{}' connection {} closed: {}", key.first, key.second, accept.connection_id,
                 reason);
  }
}

std::string ControlPlane::resource_json(const ResourceRecord& r) {
  json::object o{{"kind", r.kind}, {"name", r.name}, {"created_at", format_time_ms(r.created_at_ms)}};
  const auto* live = registry_.connections({r.kind, r.name});
  int64_t last_seen = r.last_seen_ms;
  std::string version = r.last_version, remote = r.last_remote;
  json::array conns;
  int64_t since = 0;
  if (live) {
    for (const auto& c : *live) {
      last_seen = std::max(last_seen, steady_to_unix_ms(c.link->last_received()));
      if (since == 0 || c.connected_since_ms < since) since = c.connected_since_ms;
      version = c.version;
      remote = c.remote;
      json::array servers;
      for (const auto& s : c.inventory) servers.push_back(json::string(s.name));
      conns.push_back(json::object{{"id", c.connection_id},
                                   {"remote_address", c.remote},
                                   {"version", c.version},
                                   {"connected_since", format_time_ms(c.connected_since_ms)},
                                   {"streams", c.link->stream_count()},
                                   {"rtt_us", c.link->last_rtt().count()},
                                   {"servers", std::move(servers)}});
    }
  }
  if (r.kind == "sandbox" && live) {
    // What the sandbox runs (from its hello) and, per replica, its sessions.
    json::array replicas;
    std::map<std::string, const LiveConnection*> by_instance;
    for (const auto& c : *live) by_instance.emplace(c.instance, &c);
    uint64_t in_use = 0, limit = 0;
    for (const auto& [instance, c] : by_instance) {
      in_use += c->sessions_in_use;
      limit += c->max_sessions;
      replicas.push_back(json::object{{"instance", instance},
                                      {"remote_address", c->remote},
                                      {"version", c->version},
                                      {"sessions_in_use", c->sessions_in_use},
                                      {"max_sessions", c->max_sessions}});
      if (c->sandbox && !o.contains("image")) {
        const auto& d = *c->sandbox;
        o["image"] = d.image;
        if (!d.image_digest.empty()) o["image_digest"] = d.image_digest;
        o["resources"] = json::object{{"cpu", d.cpu}, {"memory", d.memory}, {"pids", d.pids}};
        o["allowed_outbound"] = json::array(d.allowed_outbound.begin(), d.allowed_outbound.end());
      }
    }
    o["sessions_in_use"] = in_use;
    o["max_sessions"] = limit;
    o["replicas"] = std::move(replicas);
  }
  o["status"] = live && !live->empty() ? "Active" : "Disconnected";
  o["connections"] = live ? live->size() : 0;
  o["connected_since"] = format_time_ms(since);
  o["last_seen"] = format_time_ms(last_seen);
  o["version"] = version;
  o["remote_address"] = remote;
  o["links"] = std::move(conns);
  return json::serialize(o);
}

std::string ControlPlane::status_json(const std::string& kind) {
  std::string out = "[";
  for (const auto& r : store_->list_resources(kind)) {
    if (out.size() > 1) out += ",";
    out += resource_json(r);
  }
  return out + "]";
}

std::string ControlPlane::metrics_text() {
  size_t tunnels = 0, sandboxes = 0, streams = 0;
  for (const auto& link : registry_.all_links()) streams += link->stream_count();
  for (const auto& r : store_->list_resources("tunnel")) {
    tunnels += registry_.connections({"tunnel", r.name}) ? 1 : 0;
  }
  for (const auto& r : store_->list_resources("sandbox")) {
    sandboxes += registry_.connections({"sandbox", r.name}) ? 1 : 0;
  }
  std::ostringstream m;
  m << "# HELP airlock_build_info Build version.\n# TYPE airlock_build_info gauge\n"
    << "airlock_build_info{version=\"" << AIRLOCK_VERSION << "\"} 1\n"
    << "# HELP airlock_connectors_active Resources with at least one live link.\n"
    << "# TYPE airlock_connectors_active gauge\n"
    << "airlock_connectors_active{kind=\"tunnel\"} " << tunnels << "\n"
    << "airlock_connectors_active{kind=\"sandbox\"} " << sandboxes << "\n"
    << "# HELP airlock_links Live connector links.\n# TYPE airlock_links gauge\n"
    << "airlock_links " << registry_.all_links().size() << "\n"
    << "# HELP airlock_streams Open streams over all links.\n# TYPE airlock_streams gauge\n"
    << "airlock_streams " << streams << "\n"
    << "# HELP airlock_links_accepted_total Links accepted.\n"
    << "# TYPE airlock_links_accepted_total counter\n"
    << "airlock_links_accepted_total " << links_accepted_ << "\n"
    << "# HELP airlock_links_refused_total Upgrades or hellos refused.\n"
    << "# TYPE airlock_links_refused_total counter\n"
    << "airlock_links_refused_total " << links_refused_ << "\n"
    << "# HELP airlock_link_protocol_errors_total Links closed for a protocol violation.\n"
    << "# TYPE airlock_link_protocol_errors_total counter\n"
    << "airlock_link_protocol_errors_total " << protocol_errors_ << "\n"
    << "# HELP airlock_mcp_sessions Open agent MCP sessions.\n# TYPE airlock_mcp_sessions gauge\n"
    << "airlock_mcp_sessions " << gateway_->session_count() << "\n"
    << "# HELP airlock_mcp_calls_total Requests routed to tunnels.\n"
    << "# TYPE airlock_mcp_calls_total counter\n"
    << "airlock_mcp_calls_total " << gateway_->calls_total() << "\n";
  return m.str();
}

HttpResponse ControlPlane::resource_api(const HttpRequest& req, const std::string& kind,
                                        const std::string& name, const std::string& action) {
  const ConnectorRegistry::Key key{kind, name};
  if (name.empty()) {
    if (req.method == "GET") return HttpResponse::json(200, status_json(kind));
    if (req.method != "POST") return method_not_allowed("GET, POST");
    json::error_code ec;
    json::value body = json::parse(req.body, ec);
    const json::string* n = nullptr;
    if (!ec && body.is_object()) {
      if (auto* v = body.as_object().if_contains("name"); v && v->is_string()) n = &v->as_string();
    }
    if (!n) {
      return HttpResponse::error(400, "bad_request",
                                 "body must be a JSON object with a string \"name\"");
    }
    const std::string new_name(*n);
    if (!proto::is_valid_resource_name(new_name)) {
      return HttpResponse::error(400, "invalid_name",
                                 "name must be 1-63 characters of [A-Za-z0-9_.-], not starting "
                                 "with '.' or '-'");
    }
    if (auto r = store_->create_resource(kind, new_name); !r) {
      if (r.error() == Errc::kAlreadyExists) {
        return HttpResponse::error(409, "exists", kind + " '" + new_name +
                                                      "' already exists; to issue a new token "
                                                      "use POST /v1/" + kind + "s/" + new_name +
                                                      "/tokens");
      }
      return HttpResponse::error(500, "internal", "cannot store the resource");
    }
    return resource_api(req, kind, new_name, "tokens");
  }
  auto rec = store_->get_resource(kind, name);
  if (!rec) return HttpResponse::error(404, "not_found", "no " + kind + " named '" + name + "'");
  if (action.empty()) {
    if (req.method != "GET") return method_not_allowed("GET");
    return HttpResponse::json(200, resource_json(*rec));
  }
  if (req.method != "POST") return method_not_allowed("POST");
  if (action == "tokens") {
    const MintedToken minted = mint_token();
    TokenRecord t{.id = minted.id, .kind = kind, .name = name,
                  .hash = hash_token(minted.token), .created_at_ms = now_unix_ms()};
    if (!store_->add_token(t)) return HttpResponse::error(500, "internal", "cannot store token");
    spdlog::info("minted a token for {} '{}' (id {})", kind, name, minted.id);
    return HttpResponse::json(
        201, json::serialize(json::object{{"kind", kind}, {"name", name}, {"token", minted.token}}));
  }
  if (action == "revoke") {
    auto revoked = store_->revoke_tokens(kind, name);
    if (!revoked) return HttpResponse::error(500, "internal", "cannot revoke tokens");
    const size_t closed =
        registry_.close_all(key, ResetCode::kRevoked, "the connector's token was revoked");
    spdlog::info("revoked {} token(s) of {} '{}', closing {} link(s)", *revoked, kind, name, closed);
    return HttpResponse::json(
        200, json::serialize(json::object{{"revoked_tokens", *revoked}, {"closed_links", closed}}));
  }
  return HttpResponse::error(404, "not_found", "unknown action '" + action + "'");
}

asio::awaitable<HttpResponse> ControlPlane::handle(HttpRequest req) {
  const std::string path = req.path();
  if (path == "/healthz") {
    if (req.method != "GET") co_return method_not_allowed("GET");
    co_return HttpResponse::json(stopping_ ? 503 : 200,
                                 stopping_ ? R"({"status":"stopping"})" : R"({"status":"ok"})");
  }
  if (path == "/v1/connect") {
    co_return HttpResponse::error(400, "websocket_required",
                                  "/v1/connect expects a WebSocket upgrade from a connector");
  }
  if (path == "/mcp") co_return co_await gateway_->handle(std::move(req));
  const auto parts = split_path(path);
  if (path != "/metrics" && (parts.empty() || parts[0] != "v1")) {
    co_return HttpResponse::error(404, "not_found", "no such endpoint: " + path);
  }
  if (!authenticate(req, /*admin=*/true)) {
    auto r = HttpResponse::error(401, "unauthorized",
                                 "admin API needs 'Authorization: Bearer <admin token>' (the token "
                                 "is in airlockd's state_dir/admin.token)");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"airlock-admin\"");
    co_return r;
  }
  if (path == "/metrics") {
    auto r = HttpResponse::json(200, metrics_text());
    r.content_type = "text/plain; version=0.0.4";
    co_return r;
  }
  if (parts.size() == 2 && parts[1] == "status") {
    if (req.method != "GET") co_return method_not_allowed("GET");
    co_return HttpResponse::json(200, "{\"tunnels\":" + status_json("tunnel") +
                                          ",\"sandboxes\":" + status_json("sandbox") + "}");
  }
  if (parts.size() >= 2 && parts.size() <= 4 && (parts[1] == "tunnels" || parts[1] == "sandboxes")) {
    const std::string kind = parts[1] == "tunnels" ? "tunnel" : "sandbox";
    co_return resource_api(req, kind, parts.size() > 2 ? parts[2] : "",
                           parts.size() > 3 ? parts[3] : "");
  }
  if (parts.size() == 2 && parts[1] == "tools") co_return tools_api(req);
  if (parts.size() >= 2 && parts.size() <= 4 && parts[1] == "agents") {
    co_return agents_api(req, parts.size() > 2 ? parts[2] : "", parts.size() > 3 ? parts[3] : "");
  }
  if (parts.size() == 2 && parts[1] == "events") co_return events_api(req);
  co_return HttpResponse::error(404, "not_found", "no such endpoint: " + path);
}

HttpResponse ControlPlane::tools_api(const HttpRequest& req) {
  if (req.method == "GET") return HttpResponse::json(200, json::serialize(gateway_->describe()));
  if (req.method != "PUT") return method_not_allowed("GET, PUT");
  std::vector<Binding> bindings;
  try {
    // YAML is a superset of JSON: a tools.yaml file or {"tools": [...]} both parse.
    bindings = parse_bindings_yaml(req.body, "request body");
  } catch (const std::exception& e) {
    return HttpResponse::error(400, "invalid_bindings", e.what());
  }
  const std::string conflicts = gateway_->apply_bindings(bindings);
  if (!conflicts.empty()) {
    return HttpResponse::error(409, "binding_conflict",
                               "bindings not applied:\n" + conflicts.substr(0, conflicts.size() - 1));
  }
  return HttpResponse::json(200, json::serialize(gateway_->describe()));
}

HttpResponse ControlPlane::mint_agent_key(const std::string& name) {
  const MintedToken minted = mint_token();
  TokenRecord t{.id = minted.id, .kind = "agent", .name = name,
                .hash = hash_token(minted.token), .created_at_ms = now_unix_ms()};
  if (!store_->add_token(t)) return HttpResponse::error(500, "internal", "cannot store the key");
  spdlog::info("minted an agent key for '{}' (id {})", name, minted.id);
  return HttpResponse::json(
      201, json::serialize(json::object{{"name", name}, {"key", minted.token}}));
}

HttpResponse ControlPlane::agents_api(const HttpRequest& req, const std::string& name,
                                      const std::string& action) {
  auto agent_json = [](const AgentRecord& a) {
    json::array tools;
    for (const auto& t : a.tools) tools.push_back(json::string(t));
    return json::object{{"name", a.name}, {"tools", std::move(tools)},
                        {"created_at", format_time_ms(a.created_at_ms)}};
  };
  if (name.empty()) {
    if (req.method == "GET") {
      json::array out;
      for (const auto& a : store_->list_agents()) out.push_back(agent_json(a));
      return HttpResponse::json(200, json::serialize(json::object{{"agents", std::move(out)}}));
    }
    if (req.method != "POST") return method_not_allowed("GET, POST");
    boost::system::error_code ec;
    auto body = json::parse(req.body, ec);
    if (ec || !body.is_object()) {
      return HttpResponse::error(400, "bad_request", "body must be {\"name\": …, \"tools\": [globs]}");
    }
    AgentRecord a;
    if (auto* n = body.as_object().if_contains("name"); n && n->is_string()) a.name = n->as_string();
    if (!proto::is_valid_resource_name(a.name)) {
      return HttpResponse::error(400, "bad_request",
                                 "agent name must be 1-63 characters of [A-Za-z0-9_.-]");
    }
    if (auto* t = body.as_object().if_contains("tools"); t && t->is_array()) {
      for (const auto& g : t->as_array()) {
        if (!g.is_string() || g.as_string().empty()) {
          return HttpResponse::error(400, "bad_request", "tools must be a list of globs");
        }
        a.tools.emplace_back(g.as_string());
      }
    }
    if (a.tools.empty()) {
      return HttpResponse::error(400, "bad_request",
                                 "an agent key needs a tool scope, e.g. --tools 'crm_*' (or '*')");
    }
    a.created_at_ms = now_unix_ms();
    if (auto r = store_->create_agent(a); !r) {
      if (r.error() == make_error_code(Errc::kAlreadyExists)) {
        return HttpResponse::error(409, "exists",
                                   "agent '" + a.name + "' exists; mint another key with POST "
                                   "/v1/agents/" + a.name + "/keys");
      }
      return HttpResponse::error(500, "internal", "cannot store the agent");
    }
    return mint_agent_key(a.name);
  }
  auto a = store_->get_agent(name);
  if (!a) return HttpResponse::error(404, "not_found", "no agent named '" + name + "'");
  if (action.empty()) {
    if (req.method != "GET") return method_not_allowed("GET");
    return HttpResponse::json(200, json::serialize(agent_json(*a)));
  }
  if (req.method != "POST") return method_not_allowed("POST");
  if (action == "keys") return mint_agent_key(name);
  if (action == "revoke") {
    auto n = store_->revoke_tokens("agent", name);
    gateway_->forget_agent_keys();
    spdlog::info("revoked {} key(s) of agent '{}'", n ? *n : 0, name);
    return HttpResponse::json(
        200, json::serialize(json::object{{"name", name}, {"revoked_keys", n ? *n : 0}}));
  }
  return HttpResponse::error(404, "not_found", "no such action: " + action);
}

HttpResponse ControlPlane::events_api(const HttpRequest& req) {
  if (req.method != "GET") return method_not_allowed("GET");
  std::string type;
  size_t limit = 100;
  const std::string target = req.target;
  if (auto q = target.find('?'); q != std::string::npos) {
    std::istringstream qs(target.substr(q + 1));
    std::string kv;
    while (std::getline(qs, kv, '&')) {
      const auto eq = kv.find('=');
      const std::string k = kv.substr(0, eq), v = eq == std::string::npos ? "" : kv.substr(eq + 1);
      if (k == "type") type = v;
      if (k == "limit") {
        try {
          limit = std::min<size_t>(std::stoul(v), 10000);
        } catch (const std::exception&) {
          return HttpResponse::error(400, "bad_request", "limit must be a number");
        }
      }
    }
  }
  json::array out;
  for (const auto& e : store_->list_events(type, limit)) {
    boost::system::error_code ec;
    auto detail = json::parse(e.detail, ec);
    out.push_back(json::object{{"id", e.id}, {"at", format_time_ms(e.at_ms)}, {"type", e.type},
                               {"agent", e.agent}, {"tool", e.tool},
                               {"detail", ec ? json::value(e.detail) : detail}});
  }
  return HttpResponse::json(200, json::serialize(json::object{{"events", std::move(out)}}));
}

}  // namespace airlock::controlplane
