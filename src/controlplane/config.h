// AirlockdConfig: everything airlockd reads at start-up, from airlockd.yaml (reference:
// docs/configuration.md). Parsed and validated once, then shared read-only.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <optional>

#include "airlock/protocol.h"
#include "controlplane/catalog.h"

namespace airlock::controlplane {

struct TlsConfig {
  // Certificate chain and key in PEM. Both empty: airlockd runs its own CA in state_dir.
  std::string cert_file;
  std::string key_file;
  // Names the self-managed server certificate is valid for (DNS names or IP literals).
  std::vector<std::string> hostnames{"localhost", "127.0.0.1", "::1"};
  // Serve plain HTTP instead of HTTPS. Refused unless `listen` is a loopback address.
  bool plaintext = false;
};

struct ConnectorConfig {
  std::chrono::milliseconds heartbeat_interval{10000};  // pings both ways
  std::chrono::milliseconds dead_peer_timeout{30000};   // silence that closes a link
  std::chrono::milliseconds drain_timeout{10000};       // on SIGTERM, for open streams
  proto::LinkLimits limits;                             // what airlockd accepts per link
};

struct McpConfig {
  // Origin header values /mcp accepts (browsers send one; a request without Origin is
  // accepted). "*" accepts any — do not use it on a network where browsers roam.
  std::vector<std::string> allowed_origins;
  std::chrono::milliseconds session_idle_timeout{30 * 60 * 1000};  // then the session ends
  size_t max_sessions = 10000;
  size_t page_size = 100;                          // items per tools/list (etc.) page
  std::chrono::milliseconds sse_keepalive{15000};  // comment on idle SSE streams
  std::chrono::milliseconds sse_retry{1000};       // `retry` sent to clients
};

struct AuditConfig {
  // Record every call, admin change and refused authentication (state_dir/audit.db).
  bool enabled = true;
  // Also append each record as one JSON line to this file, for a log shipper; empty: none.
  // A file renamed away (log rotation) is followed by a new one at the same path.
  std::string jsonl_file;
  // Records waiting for the writer beyond which new ones are counted as dropped (and the gap
  // is itself recorded) rather than held: the request path never waits for the audit log.
  size_t max_backlog = 100000;
};

struct AirlockdConfig {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8443;  // 0 picks a free port (written to state_dir/airlockd.url)
  std::string state_dir = "./airlockd-state";  // database, CA, admin token
  TlsConfig tls;
  ConnectorConfig connectors;
  size_t max_request_body = 4 * 1024 * 1024;  // also /mcp's body limit (413 above it)
  McpConfig mcp;
  AuditConfig audit;
  // Tool bindings (`tools:`); when present they replace the stored ones at start-up.
  std::optional<std::vector<Binding>> tools;
  std::string log_level = "info";
};

// Parses YAML text; throws ConfigError naming the offending key path.
AirlockdConfig parse_airlockd_config(const std::string& yaml_text, const std::string& origin);
AirlockdConfig load_airlockd_config(const std::string& path);
// Checks cross-field rules (plaintext only on loopback, timeouts ordered, limits in range).
void validate(const AirlockdConfig& config);
// "HOST:PORT" → host and port; IPv6 as "[::1]:8443". Throws ConfigError.
void parse_listen(const std::string& text, std::string& host, uint16_t& port);

}  // namespace airlock::controlplane
