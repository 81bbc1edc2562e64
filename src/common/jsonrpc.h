// JSON-RPC 2.0 and MCP wire helpers shared by airlockd's /mcp gateway and mcp-tunnel's
// upstream clients: message classification, standard error objects, a newline-delimited JSON
// splitter (tcp:// and stdio upstreams, and the connector stream framing) and a
// Server-Sent-Events parser and formatter (Streamable HTTP). Plain code over bytes and values:
// no I/O, no clocks; safe to use from any thread on distinct objects.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::jsonrpc {
namespace json = boost::json;

// Standard JSON-RPC error codes, and the MCP ones Airlock answers with.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
// Implementation-defined server errors (-32000..-32099), documented in docs/mcp-gateway.md.
inline constexpr int kUpstreamUnavailable = -32001;  // connector or upstream not reachable
inline constexpr int kRequestTimeout = -32002;       // the call's deadline passed
inline constexpr int kForbidden = -32003;            // outside the agent key's scope
inline constexpr int kUpstreamLost = -32004;         // the upstream session ended mid-call
inline constexpr int kResourceNotFound = -32002;     // MCP's code for resources/read misses
// Codes MCP 2026-07-28 defines (its reserved range -32020..-32099).
inline constexpr int kHeaderMismatch = -32020;              // HTTP headers disagree with the body
inline constexpr int kMissingClientCapability = -32021;     // the request needs a capability
inline constexpr int kUnsupportedProtocolVersion = -32022;  // data: {supported, requested}

enum class Kind { kRequest, kNotification, kResponse };

struct Message {
  Kind kind = Kind::kRequest;
  json::object body;  // the whole message
  // Accessors; empty / null when absent.
  std::string_view method() const;
  const json::value& id() const;
  const json::object* params() const;
};

// Parses and validates one JSON-RPC 2.0 message. On failure `error` says what was wrong
// (not JSON, not an object, a batch, missing jsonrpc "2.0", bad id type, …) and the result is
// nullopt. `is_batch` is set when the text is a JSON array, which MCP no longer accepts.
std::optional<Message> parse(std::string_view text, std::string& error, bool* is_batch = nullptr);
// Validates an already-parsed value the same way.
std::optional<Message> classify(json::value v, std::string& error);

json::object make_request(json::value id, std::string_view method, json::object params);
json::object make_notification(std::string_view method, json::object params);
json::object make_result(json::value id, json::value result);
json::object make_error(json::value id, int code, std::string_view message,
                        json::value data = nullptr);

// A request id as a stable map key: numbers as "n:<digits>", strings as "s:<text>".
std::string id_key(const json::value& id);

// Splits a byte stream into lines (LF, an optional CR before it is dropped). A line longer
// than `max_line` is an error: the stream cannot be trusted to resynchronise.
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line, bool skip_empty = true)
      : max_line_(max_line), skip_empty_(skip_empty) {}
  // Appends bytes; returns false once a line has exceeded the limit.
  bool feed(std::string_view data);
  // Next complete line, if any, without its terminator (empty lines skipped if asked).
  std::optional<std::string> next();
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  size_t max_line_;
  bool skip_empty_;
};

// One Server-Sent Event.
struct SseEvent {
  std::string id;  // "" when the event had no id field
  bool has_id = false;
  std::string event;  // "" means "message"
  std::string data;   // data lines joined with '\n'
  std::optional<long> retry_ms;
};

// Incremental parser for text/event-stream bodies (WHATWG HTML §9.2). Ignores comments and
// unknown fields; an event is complete at a blank line. Bounded: an event over `max_event`
// bytes is an error.
class SseParser {
 public:
  explicit SseParser(size_t max_event) : lines_(max_event, false), max_event_(max_event) {}
  bool feed(std::string_view data);
  std::optional<SseEvent> next();
  const std::string& last_event_id() const { return last_id_; }

 private:
  LineSplitter lines_;
  size_t max_event_;
  SseEvent pending_;
  bool pending_any_ = false;
  size_t data_lines_ = 0;
  std::string last_id_;
  std::vector<SseEvent> ready_;
  size_t ready_pos_ = 0;
  bool feed_line(std::string_view line);
};

// Formats one event: "id: …\n" (when id is set), "retry: …\n" (when set), "data: …\n" per
// line of `data`, then a blank line.
std::string format_sse(std::string_view id, std::string_view data,
                       std::optional<long> retry_ms = std::nullopt);

}  // namespace airlock::jsonrpc
