// The connector handshake's JSON bodies (HELLO and ACCEPT), as value types with one parser
// and one serializer each. Parsers validate every field a peer controls and say which one was
// wrong. Unknown fields are ignored so that a newer peer can add some. Plain code, no I/O.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "airlock/error.h"
#include "airlock/protocol.h"

namespace airlock::proto {

enum class ConnectorKind { kTunnel, kSandbox };
std::string_view to_string(ConnectorKind k);
Result<ConnectorKind> parse_connector_kind(std::string_view s);

// Resource names: 1-63 characters of [A-Za-z0-9_.-], not starting with '.' or '-'.
bool is_valid_resource_name(std::string_view name);

struct InventoryServer {
  std::string name;
  std::string url;
  std::vector<std::string> credentials;  // names only; a value never leaves the connector
  std::vector<std::string> tools;
};

// What a sandbox agent runs, for `airlock status` and the console: from its sandbox.yaml,
// never a secret value.
struct SandboxDescription {
  std::string image;
  std::string image_digest;  // "sha256:…" of the image's manifest, when it has one
  std::string cpu;     // as a quantity ("2", "500m"); empty: no limit
  std::string memory;  // "4Gi"; empty: no limit
  uint64_t pids = 0;
  std::vector<std::string> allowed_outbound;
  uint32_t max_sessions = 0;
};

struct Hello {
  uint32_t protocol_version = kProtocolVersion;
  ConnectorKind kind = ConnectorKind::kTunnel;
  std::string name;      // empty: the resource the token was minted for
  std::string software;  // e.g. "mcp-tunnel/0.1.0"
  // The connector process, the same on all its links: links of one process are one replica.
  std::string instance;
  LinkLimits limits;
  std::vector<InventoryServer> inventory;
  std::optional<SandboxDescription> sandbox;  // kind "sandbox" only
};

struct Accept {
  uint32_t protocol_version = kProtocolVersion;
  std::string connection_id;
  std::string name;  // the resource this link serves
  LinkLimits limits;
  std::chrono::milliseconds heartbeat_interval{10000};
  std::chrono::milliseconds dead_peer_timeout{30000};
};

std::string serialize(const Hello& h);
std::string serialize(const Accept& a);

// On failure `error` says which field was wrong and why.
bool parse_hello(std::string_view json, Hello& out, std::string& error);
bool parse_accept(std::string_view json, Accept& out, std::string& error);

// Validates limits a peer advertised; empty string when acceptable.
std::string check_limits(const LinkLimits& l);

}  // namespace airlock::proto
