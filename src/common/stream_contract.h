// The contracts of the streams airlockd and connectors open to each other (docs/protocol.md,
// "Stream kinds"), as value types with one serializer and one parser each, like handshake.h
// does for hello/accept:
//   - every OPEN's metadata names its kind;
//   - `mcp` (airlockd -> connector): McpStreamOpen is the metadata; the connector answers with
//     McpEnvelope lines;
//   - `inventory` (connector -> airlockd): an InventoryReport body;
//   - `events` (connector -> airlockd): RedactionEvent lines;
//   - `load` (sandbox agent -> airlockd): SessionLoad, whenever its sessions in use change.
// Parsers validate every field a peer controls and say which one was wrong; unknown fields are
// ignored so that a newer peer can add some. Plain code over bytes and values: no I/O.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::proto {

enum class StreamKind { kMcp, kInventory, kEvents, kLoad };
std::string_view to_string(StreamKind k);
// The metadata of a stream that carries nothing but its kind: {"kind":"inventory"}.
std::string stream_meta(StreamKind k);
// The `kind` an OPEN's metadata names, for routing and for refusals that quote it:
// "(none)" when the metadata is not an object with a string `kind`.
std::string stream_kind_of(std::string_view meta);
std::optional<StreamKind> parse_stream_kind(std::string_view kind);

// What a sandbox agent calls the one server it offers (its toolset), in its inventory and in
// the `server` of the mcp streams airlockd opens to it.
inline constexpr std::string_view kSandboxToolset = "toolset";

// Bounds on what a peer may send, enforced by the parsers and by the readers of the bodies.
inline constexpr size_t kMaxInventoryBody = 16 * 1024 * 1024;
inline constexpr size_t kMaxEventsBody = 1024 * 1024;
inline constexpr size_t kMaxInventoryServers = 1024;
// A relayed JSON-RPC message may nest this deep inside its envelope.
inline constexpr unsigned kMaxMessageDepth = 64;

// `mcp` stream metadata: one agent session's traffic with one server of the connector.
struct McpStreamOpen {
  std::string server;   // the tunnel's server name (tunnel.yaml), or kSandboxToolset
  std::string agent;    // the agent key's agent
  std::string session;  // opaque tag of the agent session (not its Mcp-Session-Id)
  // What the connector presents upstream in `initialize`: protocolVersion, capabilities,
  // clientInfo.
  boost::json::object client;
  // The per-agent credential the binding chose, by name; empty: none.
  std::string credential;
  // The stream carries requests of an agent without a session (MCP 2026-07-28): no request
  // may rely on an earlier one through the stream, so a backend keeps nothing per stream — the
  // sandbox agent gives such a stream no sandbox of its own, only the ones named by handle.
  bool stateless = false;
};
std::string serialize(const McpStreamOpen& m);
// On failure `error` names the field ("mcp stream meta.server is required").
bool parse_mcp_open(std::string_view meta, McpStreamOpen& out, std::string& error);

// One line of an `mcp` stream from the connector: a JSON-RPC message and, for a server's own
// notification or request, the agent request it belongs to. Responses carry the agent's
// request id again (also as `related`).
// `redactions`: how many secret occurrences the connector replaced in this message (absent: 0),
// counted into the audit record of the call the message belongs to.
struct McpEnvelope {
  boost::json::object message;
  std::optional<boost::json::value> related;  // a request id: a string or a number
  uint64_t redactions = 0;
};
// One line, with its terminating '\n'.
std::string serialize_line(const McpEnvelope& e);
// The same line around `message_json`, a message already serialized (and redacted).
std::string serialize_line(std::string_view message_json,
                           const std::optional<boost::json::value>& related, uint64_t redactions);
// One line without its terminator.
bool parse_envelope(std::string_view line, McpEnvelope& out, std::string& error);

// `inventory` body: every server the connector offers, each {name, status, error, url,
// credentials, capabilities, serverInfo, tools, resources, resourceTemplates, prompts}. Only
// the fields airlockd routes by are checked here (the definitions are MCP's own).
struct InventoryReport {
  std::vector<boost::json::object> servers;
};
std::string serialize(const InventoryReport& r);
bool parse_inventory(std::string_view body, InventoryReport& out, std::string& error);

// `events` body, one per line: a secret the connector's redactor replaced, by name, with where
// it came from. Names and counts only. server/tool/agent are empty for bytes that belong to no
// agent session (the inventory, the hello).
struct RedactionEvent {
  std::string secret, server, tool, agent;
  uint64_t count = 0;
  bool operator==(const RedactionEvent&) const = default;
};
std::string serialize(const std::vector<RedactionEvent>& events);
struct RedactionEvents {
  std::vector<RedactionEvent> events;
  size_t malformed = 0;  // lines that were not a valid event (skipped)
};
RedactionEvents parse_redaction_events(std::string_view body);

// `load` body: how many agent sessions the sandbox agent process serves now, and its
// max_sessions. airlockd places each new session on the replica with the most free ones.
struct SessionLoad {
  uint32_t in_use = 0;
  uint32_t limit = 0;
  bool operator==(const SessionLoad&) const = default;
};
std::string serialize(const SessionLoad& l);
bool parse_session_load(std::string_view body, SessionLoad& out, std::string& error);

}  // namespace airlock::proto
