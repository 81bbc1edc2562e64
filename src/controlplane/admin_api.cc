#include "controlplane/admin_api.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <set>

#include "common/token.h"

namespace airlock::controlplane {
namespace json = boost::json;
using proto::ResetCode;

namespace {

int64_t steady_to_unix_ms(std::chrono::steady_clock::time_point t) {
  const auto age = std::chrono::steady_clock::now() - t;
  return now_unix_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(age).count();
}

HttpResponse json_answer(int status, const json::value& v) {
  return HttpResponse::json(status, json::serialize(v));
}

// The request body as a JSON object; nullopt (and `bad` set) when it is not one.
std::optional<json::object> body_object(const HttpRequest& req, HttpResponse& bad,
                                        std::string_view expected) {
  boost::system::error_code ec;
  auto v = json::parse(req.body, ec);
  if (ec || !v.is_object()) {
    bad = HttpResponse::error(400, "bad_request",
                              "the body must be a JSON object: " + std::string(expected));
    return std::nullopt;
  }
  return std::move(v.as_object());
}

// Fields a request may carry; anything else is named in the error.
bool only_fields(const json::object& o, std::initializer_list<std::string_view> allowed,
                 HttpResponse& bad) {
  for (const auto& kv : o) {
    if (std::find(allowed.begin(), allowed.end(), kv.key()) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      bad = HttpResponse::error(400, "unknown_field",
                                "unknown field '" + std::string(kv.key()) + "'; allowed: " + list);
      return false;
    }
  }
  return true;
}

bool glob_list(const json::value* v, std::vector<std::string>& out, HttpResponse& bad) {
  if (!v || !v->is_array()) {
    bad = HttpResponse::error(400, "bad_request",
                              "tools must be a list of globs, e.g. [\"crm_*\"] or [\"*\"]");
    return false;
  }
  for (const auto& g : v->as_array()) {
    if (!g.is_string() || g.as_string().empty()) {
      bad = HttpResponse::error(400, "bad_request", "tools must be a list of non-empty globs");
      return false;
    }
    out.emplace_back(g.as_string());
  }
  if (out.empty()) {
    bad = HttpResponse::error(400, "bad_request",
                              "an agent key needs a tool scope, e.g. [\"crm_*\"] (or [\"*\"])");
    return false;
  }
  return true;
}

HttpResponse invalid_name(const std::string& what) {
  return HttpResponse::error(400, "invalid_name",
                             what +
                                 " name must be 1-63 characters of [A-Za-z0-9_.-], not "
                                 "starting with '.' or '-'");
}

std::string plural(const std::string& kind) { return kind == "sandbox" ? "sandboxes" : kind + "s"; }

json::object agent_json(const AgentRecord& a) {
  json::array tools;
  for (const auto& t : a.tools) tools.push_back(json::string(t));
  return json::object{{"name", a.name},
                      {"tools", std::move(tools)},
                      {"created_at", format_time_ms(a.created_at_ms)}};
}

// GET /v1/audit/export: the whole log (or a time range), oldest first, as JSON Lines, read a
// thousand records at a time.
class AuditExport final : public BodyStream {
 public:
  AuditExport(AuditLog& log, AuditQuery q) : log_(log), q_(std::move(q)) { q_.oldest_first = true; }
  asio::awaitable<std::optional<std::string>> next() override {
    if (done_) co_return std::nullopt;
    q_.limit = 1000;
    auto op = log_.query(q_);
    auto page = co_await std::move(op);
    if (page.size() < q_.limit) done_ = true;
    if (page.empty()) co_return std::nullopt;
    std::string out;
    for (const auto& r : page) {
      out += json::serialize(to_json(r));
      out += '\n';
    }
    q_.after = page.back().seq;
    co_return out;
  }
  void client_gone() override { done_ = true; }

 private:
  AuditLog& log_;
  AuditQuery q_;
  bool done_ = false;
};

}  // namespace

AdminApi::AdminApi(asio::any_io_executor ex, const AirlockdConfig& config, Store& store,
                   ConnectorRegistry& registry, McpGateway& gateway, AuditLog* audit)
    : executor_(ex),
      config_(config),
      store_(store),
      registry_(registry),
      gateway_(gateway),
      audit_(audit) {}

void AdminApi::add_routes(RouteTable& routes) {
  using Ctx = RouteContext;
  routes.add("GET", "/v1/status", Access::kAdmin,
             immediate([this](const HttpRequest&, const Ctx&) { return status(); }));
  for (const std::string kind : {"tunnel", "sandbox"}) {
    const std::string base = "/v1/" + plural(kind);
    routes.add("GET", base, Access::kAdmin, immediate([this, kind](const HttpRequest&, const Ctx&) {
                 return list_resources(kind);
               }));
    routes.add("POST", base, Access::kAdmin,
               immediate([this, kind](const HttpRequest& r, const Ctx&) {
                 return create_resource(kind, r);
               }));
    routes.add("GET", base + "/{name}", Access::kAdmin,
               immediate([this, kind](const HttpRequest&, const Ctx& c) {
                 return show_resource(kind, c.param("name"));
               }));
    routes.add("PATCH", base + "/{name}", Access::kAdmin,
               immediate([this, kind](const HttpRequest& r, const Ctx& c) {
                 return update_resource(kind, c.param("name"), r);
               }));
    routes.add("DELETE", base + "/{name}", Access::kAdmin,
               immediate([this, kind](const HttpRequest&, const Ctx& c) {
                 return delete_resource(kind, c.param("name"));
               }));
    routes.add("POST", base + "/{name}/tokens", Access::kAdmin,
               immediate([this, kind](const HttpRequest&, const Ctx& c) {
                 return mint_resource_token(kind, c.param("name"));
               }));
    routes.add("POST", base + "/{name}/revoke", Access::kAdmin,
               immediate([this, kind](const HttpRequest&, const Ctx& c) {
                 return revoke_resource(kind, c.param("name"));
               }));
  }
  routes.add("GET", "/v1/tools", Access::kAdmin, immediate([this](const HttpRequest&, const Ctx&) {
               return json_answer(200, gateway_.describe());
             }));
  routes.add("PUT", "/v1/tools", Access::kAdmin,
             immediate([this](const HttpRequest& r, const Ctx&) { return put_all_bindings(r); }));
  routes.add("GET", "/v1/tools/{name}", Access::kAdmin,
             immediate([this](const HttpRequest&, const Ctx& c) {
               return show_binding(c.param("name"));
             }));
  routes.add("PUT", "/v1/tools/{name}", Access::kAdmin,
             immediate([this](const HttpRequest& r, const Ctx& c) {
               return put_binding(c.param("name"), r);
             }));
  routes.add("DELETE", "/v1/tools/{name}", Access::kAdmin,
             immediate([this](const HttpRequest&, const Ctx& c) {
               return delete_binding(c.param("name"));
             }));
  routes.add("GET", "/v1/agents", Access::kAdmin,
             immediate([this](const HttpRequest&, const Ctx&) { return list_agents(); }));
  routes.add("POST", "/v1/agents", Access::kAdmin,
             immediate([this](const HttpRequest& r, const Ctx&) { return create_agent(r); }));
  routes.add(
      "GET", "/v1/agents/{name}", Access::kAdmin,
      immediate([this](const HttpRequest&, const Ctx& c) { return show_agent(c.param("name")); }));
  routes.add("PATCH", "/v1/agents/{name}", Access::kAdmin,
             immediate([this](const HttpRequest& r, const Ctx& c) {
               return update_agent(c.param("name"), r);
             }));
  routes.add("DELETE", "/v1/agents/{name}", Access::kAdmin,
             immediate([this](const HttpRequest&, const Ctx& c) {
               return delete_agent(c.param("name"));
             }));
  routes.add("POST", "/v1/agents/{name}/keys", Access::kAdmin,
             immediate([this](const HttpRequest&, const Ctx& c) {
               return mint_agent_key(c.param("name"));
             }));
  routes.add("POST", "/v1/agents/{name}/revoke", Access::kAdmin,
             immediate([this](const HttpRequest&, const Ctx& c) {
               return revoke_agent(c.param("name"));
             }));
  routes.add("GET", "/v1/connections", Access::kAdmin,
             immediate([this](const HttpRequest&, const Ctx&) { return list_connections(); }));
  routes.add("DELETE", "/v1/connections/{id}", Access::kAdmin,
             immediate([this](const HttpRequest&, const Ctx& c) {
               return close_connection(c.param("id"));
             }));
  routes.add("GET", "/v1/audit", Access::kAdmin,
             [this](HttpRequest r, RouteContext) { return audit_query(std::move(r)); });
  routes.add("GET", "/v1/audit/verify", Access::kAdmin,
             [this](HttpRequest, RouteContext) { return audit_verify(); });
  routes.add("GET", "/v1/audit/export", Access::kAdmin,
             immediate([this](const HttpRequest& r, const Ctx&) { return audit_export(r); }));
}

// ---- tunnels and sandboxes ------------------------------------------------------------------

HttpResponse AdminApi::status() const {
  json::array tunnels, sandboxes;
  for (const auto& r : store_.list_resources("tunnel")) tunnels.push_back(resource_json(r));
  for (const auto& r : store_.list_resources("sandbox")) sandboxes.push_back(resource_json(r));
  return json_answer(
      200, json::object{{"tunnels", std::move(tunnels)}, {"sandboxes", std::move(sandboxes)}});
}

HttpResponse AdminApi::list_resources(const std::string& kind) const {
  json::array out;
  for (const auto& r : store_.list_resources(kind)) out.push_back(resource_json(r));
  return json_answer(200, out);
}

HttpResponse AdminApi::create_resource(const std::string& kind, const HttpRequest& req) {
  HttpResponse bad;
  auto body = body_object(req, bad, "{\"name\": \"...\", \"description\": \"...\"}");
  if (!body || !only_fields(*body, {"name", "description"}, bad)) return bad;
  const json::value* n = body->if_contains("name");
  if (!n || !n->is_string()) {
    return HttpResponse::error(400, "bad_request",
                               "the body must be a JSON object with a string \"name\"");
  }
  const std::string name(n->as_string());
  if (!proto::is_valid_resource_name(name)) return invalid_name(kind);
  std::string description;
  if (auto* d = body->if_contains("description")) {
    if (!d->is_string() || d->as_string().size() > 500) {
      return HttpResponse::error(400, "bad_request",
                                 "description must be a string of at most 500 characters");
    }
    description = std::string(d->as_string());
  }
  if (auto r = store_.create_resource(kind, name); !r) {
    if (r.error() == Errc::kAlreadyExists) {
      return HttpResponse::error(409, "exists",
                                 kind + " '" + name +
                                     "' already exists; to issue a new token use "
                                     "POST /v1/" +
                                     plural(kind) + "/" + name + "/tokens");
    }
    return HttpResponse::error(500, "internal", "cannot store the " + kind);
  }
  if (!description.empty()) (void)store_.set_description(kind, name, description);
  return mint_resource_token(kind, name);
}

HttpResponse AdminApi::show_resource(const std::string& kind, const std::string& name) const {
  auto rec = store_.get_resource(kind, name);
  if (!rec) {
    return HttpResponse::error(
        404, "not_found",
        "no " + kind + " named '" + name + "'; list them with GET /v1/" + plural(kind));
  }
  return json_answer(200, resource_json(*rec));
}

HttpResponse AdminApi::update_resource(const std::string& kind, const std::string& name,
                                       const HttpRequest& req) {
  HttpResponse bad;
  auto body = body_object(req, bad, "{\"description\": \"...\"}");
  if (!body || !only_fields(*body, {"description"}, bad)) return bad;
  const json::value* d = body->if_contains("description");
  if (!d || !d->is_string() || d->as_string().size() > 500) {
    return HttpResponse::error(400, "bad_request",
                               "description must be a string of at most 500 characters");
  }
  if (!store_.set_description(kind, name, std::string(d->as_string()))) {
    return HttpResponse::error(404, "not_found", "no " + kind + " named '" + name + "'");
  }
  return show_resource(kind, name);
}

HttpResponse AdminApi::delete_resource(const std::string& kind, const std::string& name) {
  if (!store_.get_resource(kind, name)) {
    return HttpResponse::error(404, "not_found", "no " + kind + " named '" + name + "'");
  }
  auto revoked = store_.revoke_tokens(kind, name);
  const size_t closed =
      registry_.close_all({kind, name}, ResetCode::kRevoked, "the " + kind + " was deleted");
  if (!store_.delete_resource(kind, name)) {
    return HttpResponse::error(500, "internal", "cannot delete the " + kind);
  }
  spdlog::info("deleted {} '{}': {} token(s) revoked, {} link(s) closed", kind, name,
               revoked ? *revoked : 0, closed);
  return json_answer(200, json::object{{"deleted", kind + "/" + name},
                                       {"revoked_tokens", revoked ? *revoked : 0},
                                       {"closed_links", closed}});
}

HttpResponse AdminApi::mint_resource_token(const std::string& kind, const std::string& name) {
  if (!store_.get_resource(kind, name)) {
    return HttpResponse::error(404, "not_found", "no " + kind + " named '" + name + "'");
  }
  const MintedToken minted = mint_token();
  TokenRecord t{.id = minted.id,
                .kind = kind,
                .name = name,
                .hash = hash_token(minted.token),
                .created_at_ms = now_unix_ms()};
  if (!store_.add_token(t)) return HttpResponse::error(500, "internal", "cannot store the token");
  spdlog::info("minted a token for {} '{}' (id {})", kind, name, minted.id);
  return json_answer(201, json::object{{"kind", kind}, {"name", name}, {"token", minted.token}});
}

HttpResponse AdminApi::revoke_resource(const std::string& kind, const std::string& name) {
  if (!store_.get_resource(kind, name)) {
    return HttpResponse::error(404, "not_found", "no " + kind + " named '" + name + "'");
  }
  auto revoked = store_.revoke_tokens(kind, name);
  if (!revoked) return HttpResponse::error(500, "internal", "cannot revoke tokens");
  const size_t closed =
      registry_.close_all({kind, name}, ResetCode::kRevoked, "the connector's token was revoked");
  spdlog::info("revoked {} token(s) of {} '{}', closing {} link(s)", *revoked, kind, name, closed);
  return json_answer(200, json::object{{"revoked_tokens", *revoked}, {"closed_links", closed}});
}

json::object AdminApi::resource_json(const ResourceRecord& r) const {
  json::object o{{"kind", r.kind},
                 {"name", r.name},
                 {"description", r.description},
                 {"created_at", format_time_ms(r.created_at_ms)}};
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
  const ConnectorRef ref{
      r.kind == "sandbox" ? proto::ConnectorKind::kSandbox : proto::ConnectorKind::kTunnel, r.name};
  o["servers"] = gateway_.servers_of(ref);
  return o;
}

// ---- tool bindings --------------------------------------------------------------------------

HttpResponse AdminApi::apply(const std::vector<Binding>& bindings) {
  const std::string conflicts = gateway_.apply_bindings(bindings);
  if (!conflicts.empty()) {
    return HttpResponse::error(
        409, "binding_conflict",
        "bindings not applied:\n" + conflicts.substr(0, conflicts.size() - 1));
  }
  return json_answer(200, gateway_.describe());
}

HttpResponse AdminApi::put_all_bindings(const HttpRequest& req) {
  std::vector<Binding> bindings;
  try {
    // YAML is a superset of JSON: a tools.yaml file or {"tools": [...]} both parse.
    bindings = parse_bindings_yaml(req.body, "request body");
  } catch (const std::exception& e) {
    return HttpResponse::error(400, "invalid_bindings", e.what());
  }
  return apply(bindings);
}

HttpResponse AdminApi::show_binding(const std::string& name) const {
  // Named: a range-for keeps only its last temporary alive, not describe()'s object.
  const json::object all = gateway_.describe();
  for (const auto& b : all.at("bindings").as_array()) {
    if (b.as_object().at("name").as_string() == name) return json_answer(200, b);
  }
  return HttpResponse::error(404, "not_found",
                             "no binding named '" + name + "'; list them with GET /v1/tools");
}

HttpResponse AdminApi::put_binding(const std::string& name, const HttpRequest& req) {
  std::vector<Binding> parsed;
  try {
    YAML::Node node = YAML::Load(req.body);
    if (!node.IsMap()) throw std::runtime_error("the body must be one binding (a mapping)");
    if (!node["name"]) node["name"] = name;
    if (node["name"].as<std::string>() != name) {
      return HttpResponse::error(400, "name_mismatch",
                                 "the body names binding '" + node["name"].as<std::string>() +
                                     "' but the path names '" + name + "'");
    }
    YAML::Node list(YAML::NodeType::Sequence);
    list.push_back(node);
    parsed = parse_bindings(list, "binding");
  } catch (const std::exception& e) {
    return HttpResponse::error(400, "invalid_bindings", e.what());
  }
  std::vector<Binding> all = gateway_.bindings();
  bool replaced = false;
  for (auto& b : all) {
    if (b.name == name) {
      b = parsed.front();
      replaced = true;
    }
  }
  if (!replaced) all.push_back(parsed.front());
  auto r = apply(all);
  if (r.status == 200) return show_binding(name);
  return r;
}

HttpResponse AdminApi::delete_binding(const std::string& name) {
  std::vector<Binding> all = gateway_.bindings();
  const auto before = all.size();
  std::erase_if(all, [&](const Binding& b) { return b.name == name; });
  if (all.size() == before) {
    return HttpResponse::error(404, "not_found", "no binding named '" + name + "'");
  }
  auto r = apply(all);
  if (r.status != 200) return r;
  return json_answer(200, json::object{{"deleted", name}});
}

// ---- agents and their keys ------------------------------------------------------------------

HttpResponse AdminApi::list_agents() const {
  json::array out;
  for (const auto& a : store_.list_agents()) out.push_back(agent_json(a));
  return json_answer(200, json::object{{"agents", std::move(out)}});
}

HttpResponse AdminApi::create_agent(const HttpRequest& req) {
  HttpResponse bad;
  auto body = body_object(req, bad, "{\"name\": \"...\", \"tools\": [globs]}");
  if (!body || !only_fields(*body, {"name", "tools"}, bad)) return bad;
  AgentRecord a;
  if (auto* n = body->if_contains("name"); n && n->is_string()) a.name = n->as_string();
  if (!proto::is_valid_resource_name(a.name)) return invalid_name("agent");
  if (!glob_list(body->if_contains("tools"), a.tools, bad)) return bad;
  a.created_at_ms = now_unix_ms();
  if (auto r = store_.create_agent(a); !r) {
    if (r.error() == Errc::kAlreadyExists) {
      return HttpResponse::error(409, "exists",
                                 "agent '" + a.name +
                                     "' exists; mint another key with POST "
                                     "/v1/agents/" +
                                     a.name + "/keys");
    }
    return HttpResponse::error(500, "internal", "cannot store the agent");
  }
  return mint_agent_key(a.name);
}

HttpResponse AdminApi::show_agent(const std::string& name) const {
  auto a = store_.get_agent(name);
  if (!a) {
    return HttpResponse::error(404, "not_found",
                               "no agent named '" + name + "'; list them with GET /v1/agents");
  }
  return json_answer(200, agent_json(*a));
}

HttpResponse AdminApi::update_agent(const std::string& name, const HttpRequest& req) {
  HttpResponse bad;
  auto body = body_object(req, bad, "{\"tools\": [globs]}");
  if (!body || !only_fields(*body, {"tools"}, bad)) return bad;
  std::vector<std::string> tools;
  if (!glob_list(body->if_contains("tools"), tools, bad)) return bad;
  if (!store_.set_agent_tools(name, tools)) {
    return HttpResponse::error(404, "not_found", "no agent named '" + name + "'");
  }
  // Sessions read the agent's scope with its key: forget the cached ones.
  gateway_.forget_agent_keys();
  return show_agent(name);
}

HttpResponse AdminApi::delete_agent(const std::string& name) {
  if (!store_.delete_agent(name)) {
    return HttpResponse::error(404, "not_found", "no agent named '" + name + "'");
  }
  gateway_.forget_agent_keys();
  spdlog::info("deleted agent '{}' and its keys", name);
  return json_answer(200, json::object{{"deleted", name}});
}

HttpResponse AdminApi::mint_agent_key(const std::string& name) {
  if (!store_.get_agent(name)) {
    return HttpResponse::error(404, "not_found", "no agent named '" + name + "'");
  }
  const MintedToken minted = mint_token();
  TokenRecord t{.id = minted.id,
                .kind = "agent",
                .name = name,
                .hash = hash_token(minted.token),
                .created_at_ms = now_unix_ms()};
  if (!store_.add_token(t)) return HttpResponse::error(500, "internal", "cannot store the key");
  spdlog::info("minted an agent key for '{}' (id {})", name, minted.id);
  return json_answer(201, json::object{{"name", name}, {"key", minted.token}});
}

HttpResponse AdminApi::revoke_agent(const std::string& name) {
  if (!store_.get_agent(name)) {
    return HttpResponse::error(404, "not_found", "no agent named '" + name + "'");
  }
  auto n = store_.revoke_tokens("agent", name);
  gateway_.forget_agent_keys();
  spdlog::info("revoked {} key(s) of agent '{}'", n ? *n : 0, name);
  return json_answer(200, json::object{{"name", name}, {"revoked_keys", n ? *n : 0}});
}

// ---- live connections -----------------------------------------------------------------------

HttpResponse AdminApi::list_connections() const {
  json::array out;
  for (const std::string kind : {"tunnel", "sandbox"}) {
    for (const auto& r : store_.list_resources(kind)) {
      const auto* live = registry_.connections({kind, r.name});
      if (!live) continue;
      for (const auto& c : *live) {
        out.push_back(
            json::object{{"id", c.connection_id},
                         {"kind", kind},
                         {"name", r.name},
                         {"instance", c.instance},
                         {"remote_address", c.remote},
                         {"version", c.version},
                         {"connected_since", format_time_ms(c.connected_since_ms)},
                         {"last_seen", format_time_ms(steady_to_unix_ms(c.link->last_received()))},
                         {"streams", c.link->stream_count()},
                         {"rtt_us", c.link->last_rtt().count()}});
      }
    }
  }
  return json_answer(200, json::object{{"connections", std::move(out)}});
}

HttpResponse AdminApi::close_connection(const std::string& id) {
  for (const std::string kind : {"tunnel", "sandbox"}) {
    for (const auto& r : store_.list_resources(kind)) {
      const auto* live = registry_.connections({kind, r.name});
      if (!live) continue;
      for (const auto& c : *live) {
        if (c.connection_id != id) continue;
        // A GOAWAY: the connector finishes what is in flight and dials again (it still holds
        // a valid token — revoke the token to keep it out).
        c.link->shutdown(ResetCode::kNoError, "closed by an administrator");
        return json_answer(200, json::object{{"closed", id}, {"kind", kind}, {"name", r.name}});
      }
    }
  }
  return HttpResponse::error(404, "not_found",
                             "no live connection '" + id + "'; list them with GET /v1/connections");
}

// ---- audit ----------------------------------------------------------------------------------

namespace {

bool parse_number(const std::map<std::string, std::string>& q, const char* key, int64_t& out,
                  std::string& error) {
  auto it = q.find(key);
  if (it == q.end() || it->second.empty()) return true;
  try {
    size_t used = 0;
    out = std::stoll(it->second, &used);
    if (used != it->second.size() || out < 0) throw std::invalid_argument("");
  } catch (const std::exception&) {
    error = std::string(key) + " must be a non-negative integer, not '" + it->second + "'";
    return false;
  }
  return true;
}

bool parse_when(const std::map<std::string, std::string>& q, const char* key, int64_t& out,
                std::string& error) {
  auto it = q.find(key);
  if (it == q.end() || it->second.empty()) return true;
  auto t = parse_time_ms(it->second);
  if (!t) {
    error = std::string(key) + " must be a time like 2026-11-27T14:08:21.000Z, not '" + it->second +
            "'";
    return false;
  }
  out = *t;
  return true;
}

// Filters shared by the query and the export; false with `error` naming the parameter.
bool audit_filters(const std::map<std::string, std::string>& q, AuditQuery& out,
                   std::string& error) {
  static const std::set<std::string> kKnown = {"type",    "actor", "target", "outcome",
                                               "session", "since", "until",  "before",
                                               "after",   "limit", "wait_ms"};
  for (const auto& [k, v] : q) {
    if (!kKnown.count(k)) {
      error = "unknown parameter '" + k +
              "'; known: type, actor, target, outcome, session, since, until, before, after, "
              "limit, wait_ms";
      return false;
    }
  }
  auto get = [&](const char* k) {
    auto it = q.find(k);
    return it == q.end() ? std::string() : it->second;
  };
  out.type = get("type");
  if (!out.type.empty() && !parse_audit_type(out.type)) {
    error = "type '" + out.type +
            "' is not a record type; one of call, server_request, admin, auth_failure, "
            "tool_refused, secret_redacted, gap";
    return false;
  }
  out.actor = get("actor");
  out.target = get("target");
  out.outcome = get("outcome");
  out.session = get("session");
  int64_t limit = 100;
  if (!parse_when(q, "since", out.since_ms, error) ||
      !parse_when(q, "until", out.until_ms, error) ||
      !parse_number(q, "before", out.before, error) ||
      !parse_number(q, "after", out.after, error) || !parse_number(q, "limit", limit, error)) {
    return false;
  }
  if (limit < 1 || limit > 1000) {
    error = "limit must be between 1 and 1000";
    return false;
  }
  out.limit = static_cast<size_t>(limit);
  return true;
}

HttpResponse audit_off() {
  return HttpResponse::error(404, "audit_disabled",
                             "the audit log is off (audit.enabled: false in airlockd.yaml)");
}

}  // namespace

// How long an audit query or verification waits for records appended before it to be written.
constexpr auto kAuditSettle = std::chrono::seconds(2);

asio::awaitable<HttpResponse> AdminApi::audit_query(HttpRequest req) {
  if (!audit_) co_return audit_off();
  const auto q = query_params(req.target);
  AuditQuery query;
  std::string error;
  if (!audit_filters(q, query, error)) co_return HttpResponse::error(400, "bad_request", error);
  int64_t wait_ms = 0;
  if (!parse_number(q, "wait_ms", wait_ms, error)) {
    co_return HttpResponse::error(400, "bad_request", error);
  }
  // Following the log: with `after` and `wait_ms`, answer once something newer is written.
  if (wait_ms > 0 && query.after > 0) {
    co_await audit_->wait_beyond(query.after,
                                 std::chrono::milliseconds(std::min<int64_t>(wait_ms, 60000)));
  } else {
    // What happened before the query is in its answer (unless the writer is seconds behind).
    co_await audit_->flush(kAuditSettle);
  }
  std::vector<AuditRecord> records;
  try {
    auto op = audit_->query(query);
    records = co_await std::move(op);
  } catch (const std::exception& e) {
    co_return HttpResponse::error(500, "audit_unreadable", e.what());
  }
  json::array out;
  for (const auto& r : records) out.push_back(to_json(r));
  json::object page{{"records", std::move(out)}, {"head", audit_->head().seq}};
  // Newest first: the next page is what comes before the oldest shown.
  if (query.after == 0 && records.size() == query.limit) page["next_before"] = records.back().seq;
  co_return json_answer(200, page);
}

asio::awaitable<HttpResponse> AdminApi::audit_verify() {
  if (!audit_) co_return audit_off();
  ChainVerdict v;
  co_await audit_->flush(kAuditSettle);
  try {
    auto op = audit_->verify();
    v = co_await std::move(op);
  } catch (const std::exception& e) {
    co_return HttpResponse::error(500, "audit_unreadable", e.what());
  }
  co_return json_answer(200, to_json(v));
}

HttpResponse AdminApi::audit_export(const HttpRequest& req) {
  if (!audit_) return audit_off();
  AuditQuery query;
  std::string error;
  if (!audit_filters(query_params(req.target), query, error)) {
    return HttpResponse::error(400, "bad_request", error);
  }
  HttpResponse r;
  r.content_type = "application/jsonl";
  r.headers.emplace_back("Content-Disposition", "attachment; filename=\"airlock-audit.jsonl\"");
  r.stream = std::make_shared<AuditExport>(*audit_, std::move(query));
  return r;
}

}  // namespace airlock::controlplane
