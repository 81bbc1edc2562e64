// TunnelConfig: mcp-tunnel's tunnel.yaml — the private MCP servers this tunnel may reach.
// Parsed once at start-up, validated, then shared read-only. Reference: docs/configuration.md.
#pragma once

#include <string>
#include <vector>

namespace airlock::tunnel {

struct UpstreamServer {
  std::string name;  // how bindings refer to it; [A-Za-z0-9_.-]
  // tcp://HOST:PORT (newline-delimited JSON-RPC), http(s)://HOST[:PORT]/PATH (Streamable
  // HTTP) or stdio:COMMAND. Never carries credentials itself.
  std::string url;
  // Names of the credentials this server uses. Only names are ever reported to airlockd.
  std::vector<std::string> credentials;
};

struct TunnelConfig {
  std::string name;  // optional; the token already names the tunnel
  std::vector<UpstreamServer> servers;
};

// Throws ConfigError naming the key path (e.g. "servers[1].url") on any problem, including
// unknown keys.
TunnelConfig parse_tunnel_config(const std::string& yaml_text, const std::string& origin);
TunnelConfig load_tunnel_config(const std::string& path);

}  // namespace airlock::tunnel
