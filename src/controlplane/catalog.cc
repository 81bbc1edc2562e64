#include "controlplane/catalog.h"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <set>

#include "common/config_util.h"
#include "common/handshake.h"
#include "common/mcp_revision.h"
#include "common/stream_contract.h"

namespace airlock::controlplane {
namespace {

std::vector<std::string> read_string_list(const YAML::Node& n, const std::string& path) {
  std::vector<std::string> out;
  if (n.IsScalar()) {
    out.push_back(read_string(n, path));
    return out;
  }
  if (!n.IsSequence()) throw ConfigError(path + " must be a list of strings");
  for (size_t i = 0; i < n.size(); ++i) {
    out.push_back(read_string(n[i], path + "[" + std::to_string(i) + "]"));
  }
  return out;
}

std::string source_of(const Binding& b) {
  if (b.connector.kind == proto::ConnectorKind::kSandbox) {
    return "binding '" + b.name + "' (" + b.connector.describe() + ")";
  }
  return "binding '" + b.name + "' (" + b.connector.describe() + ", server '" + b.server + "')";
}

// Where a binding's tools come from, for availability messages: "server 'crm' on tunnel 't1'",
// or "sandbox 'box'" (whose one server is its toolset).
std::string server_of(const Binding& b, const std::string& server) {
  if (b.connector.kind == proto::ConnectorKind::kSandbox) return b.connector.describe();
  return "server '" + server + "' on " + b.connector.describe();
}

std::string literal_prefix(std::string_view tmpl) {
  return std::string(tmpl.substr(0, tmpl.find('{')));
}

json::array to_array(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.push_back(json::string(s));
  return a;
}

std::vector<std::string> from_array(const json::value* v) {
  std::vector<std::string> out;
  if (v && v->is_array()) {
    for (const auto& s : v->as_array()) {
      if (s.is_string()) out.emplace_back(s.as_string());
    }
  }
  return out;
}

}  // namespace

std::string ConnectorRef::id() const { return std::string(proto::to_string(kind)) + "/" + name; }

std::string ConnectorRef::describe() const {
  return std::string(proto::to_string(kind)) + " '" + name + "'";
}

bool is_valid_tool_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

std::vector<Binding> parse_bindings_yaml(const std::string& text, const std::string& origin) {
  YAML::Node root = load_yaml_string(text, origin);
  if (!root || root.IsNull()) return {};
  expect_keys(root, "", {"tools"});
  auto tools = root["tools"];
  if (!tools) return {};
  return parse_bindings(tools, "tools");
}

std::vector<Binding> parse_bindings(const YAML::Node& tools, const std::string& list_path) {
  std::vector<Binding> out;
  if (tools.IsNull()) return out;
  if (!tools.IsSequence()) throw ConfigError(list_path + " must be a list of bindings");
  std::set<std::string> names;
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string path = list_path + "[" + std::to_string(i) + "]";
    const YAML::Node n = tools[i];
    expect_keys(n, path,
                {"name", "mcp_tunnel", "sandbox", "server", "tool", "prefix", "rename", "allow",
                 "deny", "timeout", "max_timeout", "agent_credential"});
    Binding b;
    if (!n["name"]) throw ConfigError(path + ".name is required");
    b.name = read_string(n["name"], path + ".name");
    if (!is_valid_tool_name(b.name)) {
      throw ConfigError(path + ".name '" + b.name +
                        "' must be 1-128 characters of [A-Za-z0-9_.-] (MCP tool names)");
    }
    if (!names.insert(b.name).second) {
      throw ConfigError(path + ".name '" + b.name + "' is used by another binding");
    }
    // Which connector: exactly one of mcp_tunnel and sandbox.
    if (n["mcp_tunnel"] && n["sandbox"]) {
      throw ConfigError(path + ": give either mcp_tunnel or sandbox, not both");
    }
    if (!n["mcp_tunnel"] && !n["sandbox"]) {
      throw ConfigError(path + " needs mcp_tunnel (a tunnel's name, with server) or sandbox (a "
                        "sandbox's name)");
    }
    const char* key = n["sandbox"] ? "sandbox" : "mcp_tunnel";
    b.connector.kind =
        n["sandbox"] ? proto::ConnectorKind::kSandbox : proto::ConnectorKind::kTunnel;
    b.connector.name = read_string(n[key], path + "." + key);
    if (!proto::is_valid_resource_name(b.connector.name)) {
      throw ConfigError(path + "." + key + " '" + b.connector.name + "' is not a " +
                        std::string(proto::to_string(b.connector.kind)) +
                        " name (1-63 characters of [A-Za-z0-9_.-])");
    }
    if (b.connector.kind == proto::ConnectorKind::kSandbox) {
      // A sandbox serves one toolset; its credentials are in its own sandbox.yaml.
      if (n["server"]) {
        throw ConfigError(path + ".server: a sandbox offers one toolset; leave server out");
      }
      if (n["agent_credential"]) {
        throw ConfigError(path + ".agent_credential: a sandbox's credentials are set in its "
                          "sandbox.yaml, not per agent");
      }
      b.server = std::string(proto::kSandboxToolset);
    } else {
      if (!n["server"]) throw ConfigError(path + ".server is required");
      b.server = read_string(n["server"], path + ".server");
      if (b.server.empty()) throw ConfigError(path + ".server must not be empty");
    }
    if (auto t = n["tool"]) b.tool = read_string(t, path + ".tool");
    if (auto p = n["prefix"]) {
      b.prefix = read_string(p, path + ".prefix");
      if (!b.prefix.empty() && !is_valid_tool_name(b.prefix)) {
        throw ConfigError(path + ".prefix '" + b.prefix + "' may use only [A-Za-z0-9_.-]");
      }
    }
    if (auto r = n["rename"]) {
      if (!r.IsMap()) throw ConfigError(path + ".rename must map upstream names to new names");
      for (const auto& kv : r) {
        const std::string from = kv.first.as<std::string>();
        const std::string to = read_string(kv.second, path + ".rename." + from);
        if (!is_valid_tool_name(to)) {
          throw ConfigError(path + ".rename." + from + " '" + to +
                            "' must be 1-128 characters of [A-Za-z0-9_.-]");
        }
        b.rename[from] = to;
      }
    }
    if (auto a = n["allow"]) b.allow = read_string_list(a, path + ".allow");
    if (auto d = n["deny"]) b.deny = read_string_list(d, path + ".deny");
    if (!b.tool.empty() &&
        (!b.prefix.empty() || !b.rename.empty() || !b.allow.empty() || !b.deny.empty())) {
      throw ConfigError(path +
                        ": 'tool' selects one tool named after the binding; it cannot "
                        "be combined with prefix, rename, allow or deny");
    }
    if (b.connector.kind == proto::ConnectorKind::kSandbox) {
      // A sandbox's tools carry their own time limits (bash's timeout_ms, up to the sandbox's
      // wall_time): the binding's deadline only backs them up.
      b.timeout = b.max_timeout = std::chrono::minutes(15);
    }
    if (auto t = n["timeout"]) b.timeout = read_duration(t, path + ".timeout");
    if (auto t = n["max_timeout"]) b.max_timeout = read_duration(t, path + ".max_timeout");
    if (b.timeout.count() <= 0) throw ConfigError(path + ".timeout must be positive");
    if (b.max_timeout < b.timeout) {
      throw ConfigError(path + ".max_timeout must not be shorter than timeout");
    }
    if (auto ac = n["agent_credential"]) {
      const std::string apath = path + ".agent_credential";
      auto valid_name = [](std::string_view v) {
        return !v.empty() && v.size() <= 128 &&
               std::all_of(v.begin(), v.end(), [](char c) {
                 return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                        c == '.';
               });
      };
      if (ac.IsMap()) {
        for (const auto& kv : ac) {
          const std::string agent = kv.first.as<std::string>();
          const std::string cred = read_string(kv.second, apath + "." + agent);
          if (!valid_name(agent)) throw ConfigError(apath + ": '" + agent + "' is not an agent name");
          if (!valid_name(cred)) {
            throw ConfigError(apath + "." + agent + ": '" + cred +
                              "' is not a credential name ([A-Za-z0-9_.-], 1-128)");
          }
          b.agent_credentials[agent] = cred;
        }
        if (b.agent_credentials.empty()) throw ConfigError(apath + " maps no agent");
      } else if (ac.IsScalar()) {
        b.agent_credential_template = read_string(ac, apath);
        const auto at = b.agent_credential_template.find("${agent}");
        std::string rest = b.agent_credential_template;
        if (at != std::string::npos) rest.erase(at, 8);
        if (at == std::string::npos || rest.find("${") != std::string::npos ||
            (!rest.empty() && !valid_name(rest))) {
          throw ConfigError(apath + " '" + b.agent_credential_template +
                            "' must be a credential name with one ${agent} in it, such as "
                            "crm-${agent}, or a map of agent: credential");
        }
      } else {
        throw ConfigError(apath + " must be a template such as crm-${agent} or a map of "
                          "agent: credential");
      }
    }
    out.push_back(std::move(b));
  }
  // One agent session has one upstream session per server, so every binding that reaches a
  // server must choose the same credential for an agent.
  std::map<std::string, const Binding*> by_server;
  for (const auto& b : out) {
    auto [it, fresh] = by_server.emplace(b.connector.describe() + "/" + b.server, &b);
    if (!fresh && it->second->agent_mapping_key() != b.agent_mapping_key()) {
      throw ConfigError("bindings '" + it->second->name + "' and '" + b.name + "' both reach "
                        "server '" + b.server + "' of " + b.connector.describe() +
                        " but map agents to credentials differently; give them the same "
                        "agent_credential");
    }
  }
  return out;
}

std::optional<std::string> Binding::credential_for(const std::string& agent) const {
  if (!agent_credential_template.empty()) {
    std::string name = agent_credential_template;
    name.replace(name.find("${agent}"), 8, agent);
    return name;
  }
  if (agent_credentials.empty()) return std::string();
  auto it = agent_credentials.find(agent);
  if (it == agent_credentials.end()) return std::nullopt;
  return it->second;
}

std::string Binding::agent_mapping_key() const {
  std::string key = agent_credential_template;
  for (const auto& [a, c] : agent_credentials) key += "|" + a + "=" + c;
  return key;
}

json::object binding_to_json(const Binding& b) {
  json::object o{{"name", b.name}};
  if (b.connector.kind == proto::ConnectorKind::kSandbox) {
    o["sandbox"] = b.connector.name;
  } else {
    o["mcp_tunnel"] = b.connector.name;
    o["server"] = b.server;
  }
  if (!b.tool.empty()) o["tool"] = b.tool;
  if (!b.prefix.empty()) o["prefix"] = b.prefix;
  if (!b.rename.empty()) {
    json::object r;
    for (const auto& [k, v] : b.rename) r[k] = v;
    o["rename"] = std::move(r);
  }
  if (!b.allow.empty()) o["allow"] = to_array(b.allow);
  if (!b.deny.empty()) o["deny"] = to_array(b.deny);
  o["timeout_ms"] = b.timeout.count();
  o["max_timeout_ms"] = b.max_timeout.count();
  if (!b.agent_credential_template.empty()) o["agent_credential"] = b.agent_credential_template;
  if (!b.agent_credentials.empty()) {
    json::object m;
    for (const auto& [a, c] : b.agent_credentials) m[a] = c;
    o["agent_credential"] = std::move(m);
  }
  return o;
}

Binding binding_from_json(const json::object& o) {
  Binding b;
  auto str = [&](const char* k) -> std::string {
    auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  b.name = str("name");
  if (o.contains("sandbox")) {
    b.connector = {proto::ConnectorKind::kSandbox, str("sandbox")};
    b.server = std::string(proto::kSandboxToolset);
  } else {
    b.connector = {proto::ConnectorKind::kTunnel, str("mcp_tunnel")};
    b.server = str("server");
  }
  b.tool = str("tool");
  b.prefix = str("prefix");
  if (auto* r = o.if_contains("rename"); r && r->is_object()) {
    for (const auto& kv : r->as_object()) {
      if (kv.value().is_string())
        b.rename[std::string(kv.key())] = std::string(kv.value().as_string());
    }
  }
  b.allow = from_array(o.if_contains("allow"));
  b.deny = from_array(o.if_contains("deny"));
  if (auto* t = o.if_contains("timeout_ms"); t && t->is_int64()) {
    b.timeout = std::chrono::milliseconds(t->as_int64());
  }
  if (auto* t = o.if_contains("max_timeout_ms"); t && t->is_int64()) {
    b.max_timeout = std::chrono::milliseconds(t->as_int64());
  }
  if (auto* ac = o.if_contains("agent_credential")) {
    if (ac->is_string()) b.agent_credential_template = std::string(ac->as_string());
    if (ac->is_object()) {
      for (const auto& kv : ac->as_object()) {
        if (kv.value().is_string()) {
          b.agent_credentials[std::string(kv.key())] = std::string(kv.value().as_string());
        }
      }
    }
  }
  return b;
}

Catalog Catalog::build(const std::vector<Binding>& bindings,
                       const std::map<ConnectorRef, ConnectorInventory>& inventories,
                       std::vector<std::string>& conflicts) {
  Catalog c;
  std::vector<const Binding*> ordered;
  for (const auto& b : bindings) ordered.push_back(&b);
  std::sort(ordered.begin(), ordered.end(),
            [](const Binding* a, const Binding* b) { return a->name < b->name; });
  std::map<std::string, std::string> tool_src, prompt_src, resource_src;

  auto add = [&](std::vector<ExposedItem>& list, std::map<std::string, size_t, std::less<>>& index,
                 std::map<std::string, std::string>& src, const char* what, ExposedItem item) {
    const std::string here = source_of(*item.route.binding);
    auto [it, fresh] = src.emplace(item.name, here);
    if (!fresh) {
      if (it->second != here) {
        conflicts.push_back(std::string(what) + " '" + item.name + "' from " + here +
                            " collides with the same name from " + it->second);
      }
      return;
    }
    index.emplace(item.name, list.size());
    list.push_back(std::move(item));
  };

  for (const Binding* b : ordered) {
    auto inv = inventories.find(b->connector);
    if (inv == inventories.end()) {
      c.unavailable_[b->name] = b->connector.describe() + " is not connected";
      continue;
    }
    const json::object* server = nullptr;
    for (const auto& s : inv->second.servers) {
      auto* n = s.if_contains("name");
      auto* u = s.if_contains("url");
      if ((n && n->is_string() && n->as_string() == b->server) ||
          (u && u->is_string() && u->as_string() == b->server)) {
        server = &s;
        break;
      }
    }
    if (!server) {
      c.unavailable_[b->name] =
          b->connector.describe() + " has no server named '" + b->server + "'";
      continue;
    }
    const std::string server_name = std::string(server->at("name").as_string());
    if (auto* st = server->if_contains("status");
        st && st->is_string() && st->as_string() != "ok") {
      std::string why = server_of(*b, server_name) + " is " + std::string(st->as_string());
      if (auto* e = server->if_contains("error"); e && e->is_string()) {
        why += ": " + std::string(e->as_string());
      }
      c.unavailable_[b->name] = why;
      continue;
    }
    const Route route{b, server_name};
    auto exposed_name = [&](const std::string& upstream) {
      if (auto r = b->rename.find(upstream); r != b->rename.end()) return r->second;
      return b->prefix + upstream;
    };
    auto items = [&](const char* key) -> const json::array* {
      auto* v = server->if_contains(key);
      return v && v->is_array() ? &v->as_array() : nullptr;
    };
    if (auto* tools = items("tools")) {
      for (const auto& t : *tools) {
        if (!t.is_object()) continue;
        auto* n = t.as_object().if_contains("name");
        if (!n || !n->is_string()) continue;
        const std::string up(n->as_string());
        std::string name;
        if (!b->tool.empty()) {
          if (up != b->tool) continue;
          name = b->name;
        } else {
          if (!b->allow.empty() && !any_glob_match(b->allow, up)) continue;
          if (any_glob_match(b->deny, up)) continue;
          name = exposed_name(up);
        }
        if (!is_valid_tool_name(name)) {
          conflicts.push_back("tool '" + up + "' from " + source_of(*b) + " would be exposed as '" +
                              name + "', which is not a valid name");
          continue;
        }
        ExposedItem item{name, up, route, t.as_object()};
        item.definition["name"] = name;
        if (const json::value* schema = item.definition.if_contains("inputSchema")) {
          item.mirrors_arguments = mcp::mentions_header_params(*schema);
        }
        add(c.tools_, c.tool_index_, tool_src, "tool", std::move(item));
      }
      if (!b->tool.empty() && !c.tool_index_.count(b->name)) {
        c.unavailable_[b->name] =
            server_of(*b, server_name) + " offers no tool named '" + b->tool + "'";
      }
    }
    if (!b->tool.empty()) continue;  // a single-tool binding exposes nothing else
    // Resources keep their URIs (servers and tools refer to them by URI, and rewriting would
    // break those references); their names carry the binding's prefix like tools and prompts.
    auto prefix_name = [&](json::object& def) {
      if (b->prefix.empty()) return;
      if (auto* n = def.if_contains("name"); n && n->is_string()) {
        *n = b->prefix + std::string(n->as_string());
      }
    };
    if (auto* prompts = items("prompts")) {
      for (const auto& p : *prompts) {
        if (!p.is_object()) continue;
        auto* n = p.as_object().if_contains("name");
        if (!n || !n->is_string()) continue;
        const std::string up(n->as_string());
        ExposedItem item{exposed_name(up), up, route, p.as_object()};
        item.definition["name"] = item.name;
        add(c.prompts_, c.prompt_index_, prompt_src, "prompt", std::move(item));
      }
    }
    if (auto* resources = items("resources")) {
      for (const auto& r : *resources) {
        if (!r.is_object()) continue;
        auto* u = r.as_object().if_contains("uri");
        if (!u || !u->is_string()) continue;
        const std::string uri(u->as_string());
        ExposedItem item{uri, uri, route, r.as_object()};
        prefix_name(item.definition);
        add(c.resources_, c.resource_index_, resource_src, "resource", std::move(item));
      }
    }
    if (auto* templates = items("resourceTemplates")) {
      for (const auto& t : *templates) {
        if (!t.is_object()) continue;
        auto* u = t.as_object().if_contains("uriTemplate");
        if (!u || !u->is_string()) continue;
        ExposedTemplate tmpl{literal_prefix(u->as_string()), route, t.as_object()};
        prefix_name(tmpl.definition);
        c.templates_.push_back(std::move(tmpl));
      }
    }
  }
  return c;
}

const ExposedItem* Catalog::tool(std::string_view name) const {
  auto it = tool_index_.find(name);
  return it == tool_index_.end() ? nullptr : &tools_[it->second];
}

const ExposedItem* Catalog::prompt(std::string_view name) const {
  auto it = prompt_index_.find(name);
  return it == prompt_index_.end() ? nullptr : &prompts_[it->second];
}

std::optional<Route> Catalog::route_resource(std::string_view uri) const {
  if (auto it = resource_index_.find(uri); it != resource_index_.end()) {
    return resources_[it->second].route;
  }
  const ExposedTemplate* best = nullptr;
  for (const auto& t : templates_) {
    if (uri.substr(0, t.literal_prefix.size()) == t.literal_prefix &&
        (!best || t.literal_prefix.size() > best->literal_prefix.size())) {
      best = &t;
    }
  }
  if (best) return best->route;
  return std::nullopt;
}

}  // namespace airlock::controlplane
