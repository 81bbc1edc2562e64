#include "tunnel/tunnel.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <deque>
#include <sstream>
#include <stdexcept>

#include "common/config_util.h"
#include "common/connector_cli.h"
#include "common/jsonrpc.h"
#include "common/metrics.h"
#include "common/stream_contract.h"

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
  if (!options_.secrets) {
    options_.secrets = std::make_shared<secrets::SecretStore>(options_.config.secrets);
    options_.secrets->load();
  }
  children_ = std::make_shared<ChildProcesses>(ex);
  service_ = std::make_unique<McpService>(ex, "mcp-tunnel", static_cast<McpBackend&>(*this));
  service_->redact_links(options_.connector, options_.secrets);
  auto& hello = options_.connector.hello;
  hello.kind = proto::ConnectorKind::kTunnel;
  hello.name = options_.config.name;
  hello.software = "mcp-tunnel/" AIRLOCK_VERSION;
  hello.inventory = inventory_of(options_.config);
  options_.connector.dial.user_agent = hello.software;
  for (const auto& s : options_.config.servers) {
    auto& st = servers_[s.name];
    st.config = s;
    st.refresh = std::make_unique<asio::steady_timer>(ex);
  }
  options_.connector.on_link_up = [this](std::shared_ptr<Link> link) {
    service_->on_link_up(link);
  };
  connector_ = std::make_unique<Connector>(ex, options_.connector,
                                           [this](std::shared_ptr<LinkStream> s) {
                                             service_->on_stream(std::move(s));
                                           });
  service_->attach(*connector_);
}

Tunnel::~Tunnel() = default;

void Tunnel::start() {
  watcher_ = std::make_unique<secrets::SecretWatcher>(
      executor_, options_.secrets,
      [this](const std::vector<std::string>&) { on_secrets_reloaded(); });
  watcher_->start();
  if (options_.metrics_addr.empty()) return;
  const HttpServerOptions http = loopback_listener(options_.metrics_addr);
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
  for (const auto& [name, st] : servers_) {
    asio::co_spawn(executor_, inventory_loop(name), asio::detached);
  }
  co_await connector_->run();
}

asio::awaitable<void> Tunnel::stop() {
  stopping_ = true;
  service_->stop();
  if (watcher_) watcher_->stop();
  if (metrics_) metrics_->stop();
  for (auto& [name, st] : servers_) st.refresh->cancel();
  co_await connector_->stop();
  for (auto& [name, st] : servers_) {
    if (st.inventory) st.inventory->close();
  }
  // Every server process ends before the tunnel does: each holds credentials in its
  // environment, and agents' sessions that were never ended (no DELETE) still hold theirs.
  co_await children_->stop_all();
}

proto::InventoryReport Tunnel::inventory() const {
  proto::InventoryReport report;
  for (const auto& [name, st] : servers_) {
    json::object o = st.catalog;
    o["name"] = name;
    o["url"] = st.config.url;
    o["status"] = st.status;
    if (!st.error.empty()) o["error"] = st.error;
    json::array creds;
    for (const auto& c : st.config.credentials) creds.push_back(json::string(c));
    o["credentials"] = std::move(creds);
    if (st.config.uses_agent_secret) {
      json::array globs;
      for (const auto& g : st.config.agent_credentials) globs.push_back(json::string(g));
      o["agent_credentials"] = std::move(globs);
    }
    report.servers.push_back(std::move(o));
  }
  return report;
}

asio::awaitable<bool> Tunnel::fetch_catalog(ServerState& st, std::string& error) {
  auto session = st.inventory;
  UpstreamSession::RequestError failure;
  // Every page of a paginated list. A list that is `optional` — one the server's capabilities
  // do not require it to serve — and that the server does not know (-32601 on the first page)
  // is empty: many servers declare `resources` and lack resources/templates/list, or declare
  // a capability they serve nothing under.
  auto list_all = [&](std::string method, std::string key, json::array& out,
                      bool optional) -> asio::awaitable<bool> {
    std::string cursor;
    for (int page = 0; page < 1000; ++page) {
      json::object params;
      if (!cursor.empty()) params["cursor"] = cursor;
      auto r = co_await session->request(method, std::move(params), failure);
      if (!r && optional && page == 0 && failure.code == jsonrpc::kMethodNotFound) {
        if (st.missing_lists.insert(method).second) {
          spdlog::debug("server '{}' does not serve {}: taken as empty", st.config.name, method);
        }
        co_return true;
      }
      if (!r) {
        error = failure.message;
        co_return false;
      }
      if (!r->is_object()) {
        error = method + " returned a result that is not an object";
        co_return false;
      }
      if (page == 0) st.missing_lists.erase(method);
      if (auto* items = r->as_object().if_contains(key); items && items->is_array()) {
        for (auto& it : items->as_array()) out.push_back(it);
      }
      auto* next = r->as_object().if_contains("nextCursor");
      if (!next || !next->is_string() || next->as_string().empty()) co_return true;
      cursor = std::string(next->as_string());
    }
    error = method + " returned more than 1000 pages";
    co_return false;
  };
  json::array tools, resources, templates, prompts;
  // The first request also initializes the session, which tells us the capabilities.
  auto ping = co_await session->request("ping", {}, failure);
  if (!ping) {
    error = failure.message;
    co_return false;
  }
  const json::object init = session->server_init();
  json::object caps;
  if (auto* c = init.if_contains("capabilities"); c && c->is_object()) caps = c->as_object();
  // `tools` is what a server is bound for: a server that declares it must list them.
  if (caps.contains("tools") && !co_await list_all("tools/list", "tools", tools, false)) {
    co_return false;
  }
  if (caps.contains("resources") &&
      (!co_await list_all("resources/list", "resources", resources, true) ||
       !co_await list_all("resources/templates/list", "resourceTemplates", templates, true))) {
    co_return false;
  }
  if (caps.contains("prompts") && !co_await list_all("prompts/list", "prompts", prompts, true)) {
    co_return false;
  }
  json::object catalog;
  catalog["capabilities"] = caps;
  if (auto* si = init.if_contains("serverInfo")) catalog["serverInfo"] = *si;
  if (auto* ins = init.if_contains("instructions")) catalog["instructions"] = *ins;
  catalog["tools"] = std::move(tools);
  catalog["resources"] = std::move(resources);
  catalog["resourceTemplates"] = std::move(templates);
  catalog["prompts"] = std::move(prompts);
  st.catalog = std::move(catalog);
  co_return true;
}

asio::awaitable<void> Tunnel::inventory_loop(std::string server) {
  auto& st = servers_.at(server);
  int failures = 0;
  while (!stopping_) {
    // A server whose credentials are not allowed or not loaded is reported, not dialed.
    if (std::string problem = credential_problem(st.config, "", st.config.inventory_credential);
        !problem.empty()) {
      if (st.status != "unavailable" || st.error != problem) {
        spdlog::warn("server '{}' is unavailable: {}", server, problem);
        st.status = "unavailable";
        st.error = problem;
        st.catalog = {};
        service_->inventory_changed();
      }
      if (st.inventory) {
        st.inventory->close();
        st.inventory.reset();
      }
      st.refresh->expires_after(std::chrono::hours(24));  // until the secrets change
      co_await st.refresh->async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (!st.inventory) {
      // Every client capability, so that servers which offer some tools only to capable
      // clients (sampling, elicitation, roots) list them all in the catalog.
      json::object client{{"protocolVersion", "2025-11-25"},
                          {"capabilities",
                           json::object{{"sampling", json::object{}},
                                        {"elicitation", json::object{{"form", json::object{}}}},
                                        {"roots", json::object{{"listChanged", true}}}}},
                          {"clientInfo", json::object{{"name", "mcp-tunnel-inventory"},
                                                      {"version", AIRLOCK_VERSION}}}};
      st.inventory = std::make_shared<UpstreamSession>(
          executor_, st.config, std::move(client),
          [this, server](json::object message, std::optional<json::value>) {
            auto it = servers_.find(server);
            if (it == servers_.end()) return;
            std::string err;
            auto m = jsonrpc::classify(json::value(std::move(message)), err);
            if (!m) return;
            if (m->kind == jsonrpc::Kind::kRequest && m->method() == "roots/list") {
              it->second.inventory->send(
                  jsonrpc::make_result(m->id(), json::object{{"roots", json::array{}}}));
            } else if (m->kind == jsonrpc::Kind::kRequest) {
              // The inventory session serves no sampling or elicitation.
              it->second.inventory->send(jsonrpc::make_error(
                  m->id(), jsonrpc::kMethodNotFound,
                  "mcp-tunnel's inventory session does not handle " + std::string(m->method())));
            } else if (m->method() == "notifications/tools/list_changed" ||
                       m->method() == "notifications/resources/list_changed" ||
                       m->method() == "notifications/prompts/list_changed") {
              it->second.refresh->cancel();
            }
          },
          Injection{.store = options_.secrets,
                    .agent_credential = st.config.inventory_credential,
                    .inventory = true},
          children_);
    }
    std::string error;
    const bool ok = co_await fetch_catalog(st, error);
    if (stopping_) co_return;
    const std::string old_status = st.status;
    if (ok) {
      failures = 0;
      st.status = "ok";
      st.error.clear();
      size_t tools = 0;
      if (auto* t = st.catalog.if_contains("tools"); t && t->is_array()) tools = t->as_array().size();
      spdlog::info("server '{}': catalog fetched ({} tools)", server, tools);
    } else {
      ++failures;
      st.status = "unavailable";
      st.error = error;
      if (old_status != "unavailable") spdlog::warn("server '{}' is unavailable: {}", server, error);
    }
    service_->inventory_changed();
    // Wait for list_changed (the timer is cancelled), or retry / refresh later.
    const auto wait = ok ? std::chrono::milliseconds(std::chrono::minutes(10))
                         : std::min<std::chrono::milliseconds>(
                               std::chrono::milliseconds(500) * (1 << std::min(failures, 6)),
                               std::chrono::seconds(30));
    st.refresh->expires_after(wait);
    co_await st.refresh->async_wait(asio::as_tuple(asio::use_awaitable));
  }
}


std::string Tunnel::refuse(const proto::McpStreamOpen& open) const {
  if (servers_.count(open.server)) return "";
  return "mcp-tunnel has no server named '" + open.server + "' in its tunnel.yaml";
}

size_t Tunnel::max_message(const std::string& server) const {
  return servers_.at(server).config.max_message;
}

namespace {

// An agent's session with a private server, as the MCP service sees it.
class ServerSession final : public McpBackendSession {
 public:
  explicit ServerSession(std::shared_ptr<UpstreamSession> session) : session_(std::move(session)) {}
  void send(json::object message) override { session_->send(std::move(message)); }
  void close() override { session_->close(); }

 private:
  std::shared_ptr<UpstreamSession> session_;
};

}  // namespace

std::shared_ptr<McpBackendSession> Tunnel::open_session(const proto::McpStreamOpen& open,
                                                        McpBackend::Emit emit,
                                                        McpBackend::End /*end*/,
                                                        std::string& problem) {
  const auto& st = servers_.at(open.server);
  // Credentials are checked once per agent session: the server's own, and the one the binding
  // chose for this agent.
  problem = credential_problem(st.config, open.agent, open.credential);
  if (!problem.empty()) return nullptr;
  return std::make_shared<ServerSession>(std::make_shared<UpstreamSession>(
      executor_, st.config, open.client, std::move(emit),
      Injection{.store = options_.secrets,
                .agent_credential = open.credential,
                .tool_schema = [this, server = open.server](
                                   std::string_view tool) { return tool_schema(server, tool); }},
      children_));
}

const json::object* Tunnel::tool_schema(const std::string& server, std::string_view tool) const {
  auto st = servers_.find(server);
  const json::value* tools =
      st == servers_.end() ? nullptr : st->second.catalog.if_contains("tools");
  if (!tools || !tools->is_array()) return nullptr;
  for (const auto& t : tools->as_array()) {
    const json::value* name = t.is_object() ? t.as_object().if_contains("name") : nullptr;
    if (!name || !name->is_string() || name->as_string() != tool) continue;
    const json::value* schema = t.as_object().if_contains("inputSchema");
    return schema && schema->is_object() ? &schema->as_object() : nullptr;
  }
  return nullptr;
}

std::string Tunnel::credential_problem(const UpstreamServer& s, const std::string& agent,
                                       const std::string& agent_credential) const {
  const auto set = options_.secrets->current();
  std::string allowed;
  for (const auto& p : options_.allowed_credentials) allowed += (allowed.empty() ? "" : ", ") + p;
  auto check = [&](const std::string& name, const std::string& role) -> std::string {
    if (!any_glob_match(options_.allowed_credentials, name)) {
      return "server '" + s.name + "' uses " + role + "credential '" + name +
             "', which this tunnel's --allowed-credentials (" + allowed + ") does not allow";
    }
    if (!set || !set->find(name)) {
      return "server '" + s.name + "' uses " + role + "credential '" + name +
             "', which is not loaded: no entry under 'secrets' in tunnel.yaml provides it";
    }
    return "";
  };
  for (const auto& name : s.credentials) {
    if (name == s.inventory_credential && agent_credential != name) continue;  // below
    if (auto p = check(name, ""); !p.empty()) return p;
  }
  if (!s.uses_agent_secret) return "";
  if (agent_credential.empty()) {
    if (agent.empty()) return "";  // the inventory session leaves ${agent_secret} out
    return "server '" + s.name + "' needs a per-agent credential (${agent_secret}), and "
           "airlockd's binding maps none to agent '" + agent + "'";
  }
  if (agent.empty()) return check(agent_credential, "inventory ");
  if (!any_glob_match(s.agent_credentials, agent_credential)) {
    std::string globs;
    for (const auto& g : s.agent_credentials) globs += (globs.empty() ? "" : ", ") + g;
    return "credential '" + agent_credential + "'" +
           (agent.empty() ? "" : " chosen for agent '" + agent + "'") +
           " is not among the agent_credentials of server '" + s.name + "' (" + globs + ")";
  }
  std::string p = check(agent_credential, "the per-agent ");
  return p.empty() ? p : p + " (chosen for agent '" + agent + "')";
}

void Tunnel::on_secrets_reloaded() {
  // Availability may have changed either way; every inventory loop looks again.
  for (auto& [name, st] : servers_) st.refresh->cancel();
}

asio::awaitable<HttpResponse> Tunnel::metrics_handler(HttpRequest req) {
  const auto& st = connector_->stats();
  const auto& served = service_->stats();
  if (req.path() == "/ready") {
    if (connector_->ready()) co_return HttpResponse::json(200, R"({"ready":true})");
    co_return HttpResponse::json(
        503, boost::json::serialize(boost::json::object{{"ready", false},
                                                        {"last_error", st.last_error}}));
  }
  if (req.path() == "/metrics") {
    Metrics m;
    m.add("airlock_tunnel_links_active", kGauge, "Established links to airlockd.", st.active_links);
    m.add("airlock_tunnel_connects_total", kCounter, "Links established.", st.connects);
    m.add("airlock_tunnel_dial_failures_total", kCounter, "Attempts that did not establish a link.",
          st.dial_failures);
    m.add("airlock_tunnel_streams_refused_total", kCounter,
          "Streams of a kind this tunnel does not serve.", served.streams_refused);
    m.add("airlock_tunnel_mcp_sessions_total", kCounter, "Agent sessions served (one per server).",
          served.sessions_total);
    m.add("airlock_tunnel_mcp_sessions_open", kGauge, "Agent sessions open now.",
          served.sessions_open);
    m.add("airlock_tunnel_redactions_total", kCounter,
          "Secret occurrences redacted from what was sent.", served.redactions_total);
    m.add("airlock_tunnel_secret_reloads_total", kCounter, "Successful secret reloads.",
          watcher_ ? watcher_->reloads() : 0);
    m.add("airlock_tunnel_secret_reload_failures_total", kCounter,
          "Reloads that kept the old secrets.", watcher_ ? watcher_->failures() : 0);
    // Per stdio server: a client that never ends its sessions holds one process per session
    // until airlockd's idle timeout, up to the server's max_processes.
    auto per_server = [&](const char* metric, prometheus::MetricType type, const char* help,
                          auto value) {
      std::vector<Metrics::Sample> samples;
      for (const auto& [name, st] : servers_) {
        if (st.config.url.rfind("stdio:", 0) != 0) continue;
        samples.push_back({{{"server", name}}, static_cast<double>(value(name, st))});
      }
      m.read_at_scrape(metric, type, help, [samples] { return samples; });
    };
    per_server("airlock_tunnel_server_processes", kGauge, "stdio server processes running now.",
               [&](const std::string& n, const ServerState&) { return children_->running(n); });
    per_server("airlock_tunnel_server_processes_limit", kGauge,
               "max_processes of each stdio server.",
               [](const std::string&, const ServerState& st) { return st.config.max_processes; });
    per_server("airlock_tunnel_server_process_evictions_total", kCounter,
               "Sessions ended to make room.",
               [&](const std::string& n, const ServerState&) { return children_->evicted(n); });
    co_return m.response();
  }
  co_return HttpResponse::error(404, "not_found", "only /ready and /metrics are served here");
}

}  // namespace airlock::tunnel
