// Tool bindings and the catalog they produce. A Binding (from `airlock tools apply -f
// tools.yaml`, or `tools:` in airlockd.yaml) exposes to agents one private server behind a
// tunnel (`mcp_tunnel: NAME`, `server: …`) or the toolset of a sandbox (`sandbox: NAME`), with
// optional single-tool selection, rename, prefix and allow/deny filters. The Catalog is what
// agents see: every exposed tool, prompt, resource and resource template of every binding whose
// connector is connected, each with the route back to the server that serves it, and the
// collisions that were refused. Plain code over values: no I/O, no clocks.
#pragma once

#include <yaml-cpp/yaml.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config_util.h"
#include "common/handshake.h"

namespace airlock::controlplane {
namespace json = boost::json;

// The connector a binding reaches, as airlockd's registry knows it: (kind, resource name).
struct ConnectorRef {
  proto::ConnectorKind kind = proto::ConnectorKind::kTunnel;
  std::string name;
  auto operator<=>(const ConnectorRef&) const = default;
  // "tunnel 'sales'", "sandbox 'tool-box'": how messages name it.
  std::string describe() const;
  // "tunnel/sales": how the audit log and metrics name it.
  std::string id() const;
};

struct Binding {
  std::string name;        // unique; with `tool`, also the name agents call it by
  ConnectorRef connector;  // `mcp_tunnel: NAME` or `sandbox: NAME`
  // A tunnel's server: its name in tunnel.yaml, or its URL there. A sandbox offers one server,
  // its toolset (proto::kSandboxToolset).
  std::string server;
  std::string tool;    // optional: expose only this upstream tool, named `name`
  std::string prefix;  // prepended to every exposed tool and prompt name
  std::map<std::string, std::string> rename;      // upstream tool/prompt name -> exposed name
  std::vector<std::string> allow;                 // globs over upstream tool names; empty: all
  std::vector<std::string> deny;                  // globs over upstream tool names
  std::chrono::milliseconds timeout{60000};       // a call's deadline
  std::chrono::milliseconds max_timeout{600000};  // progress extends it up to this
  // Per-agent credential (`agent_credential:` in YAML): a table from agent name to credential
  // name, or a template such as "crm-${agent}". Names only: the tunnel holds the values and
  // refuses names outside the server's own agent_credentials.
  std::map<std::string, std::string> agent_credentials;
  std::string agent_credential_template;

  bool maps_agents() const { return !agent_credentials.empty() || !agent_credential_template.empty(); }
  // The credential name for `agent`; nullopt when the binding maps agents but not this one.
  // Empty when the binding maps no agents at all.
  std::optional<std::string> credential_for(const std::string& agent) const;
  // The mapping in a comparable form (bindings that reach one server must agree on it).
  std::string agent_mapping_key() const;
};

// Parses the `tools:` list of a tools.yaml document (the whole document is {tools: [...]}).
// Throws ConfigError naming the key path on any problem, including unknown keys, invalid
// names and duplicate binding names.
std::vector<Binding> parse_bindings_yaml(const std::string& text, const std::string& origin);
// The list itself (also `tools:` in airlockd.yaml); `path` prefixes key paths in errors.
std::vector<Binding> parse_bindings(const YAML::Node& list, const std::string& path);
// Storage form (JSON), lossless.
json::object binding_to_json(const Binding& b);
Binding binding_from_json(const json::object& o);

// Tool/prompt names valid per the MCP spec: 1-128 characters of [A-Za-z0-9_.-].
bool is_valid_tool_name(std::string_view name);

// What one connector reported: its servers, each {name, url, status, tools, prompts, …}.
struct ConnectorInventory {
  std::vector<json::object> servers;
};

struct Route {
  const Binding* binding = nullptr;
  std::string server;  // the server's name in the connector's inventory
};

struct ExposedItem {
  std::string name;           // as agents see it (tools, prompts); the URI for resources
  std::string upstream_name;  // as the server knows it
  Route route;
  json::object definition;  // the server's definition with the exposed name filled in
  // A tool whose inputSchema marks arguments to be mirrored in Mcp-Param-* headers (MCP
  // 2026-07-28): only its calls have headers to check.
  bool mirrors_arguments = false;
};

struct ExposedTemplate {
  std::string literal_prefix;  // the uriTemplate up to its first '{'
  Route route;
  json::object definition;
};

class Catalog {
 public:
  // `inventories` holds only connectors that have a live link. `conflicts` receives one
  // message per collision (the first binding in name order keeps the name).
  static Catalog build(const std::vector<Binding>& bindings,
                       const std::map<ConnectorRef, ConnectorInventory>& inventories,
                       std::vector<std::string>& conflicts);

  const std::vector<ExposedItem>& tools() const { return tools_; }
  const std::vector<ExposedItem>& prompts() const { return prompts_; }
  const std::vector<ExposedItem>& resources() const { return resources_; }
  const std::vector<ExposedTemplate>& templates() const { return templates_; }
  const ExposedItem* tool(std::string_view name) const;
  const ExposedItem* prompt(std::string_view name) const;
  // A resource by URI: listed ones exactly, else the template with the longest matching
  // literal prefix.
  std::optional<Route> route_resource(std::string_view uri) const;
  // Bindings that are bound but whose connector or server is not available, with the reason.
  const std::map<std::string, std::string>& unavailable() const { return unavailable_; }

 private:
  std::vector<ExposedItem> tools_, prompts_, resources_;
  std::vector<ExposedTemplate> templates_;
  std::map<std::string, size_t, std::less<>> tool_index_, prompt_index_, resource_index_;
  std::map<std::string, std::string> unavailable_;
};

}  // namespace airlock::controlplane
