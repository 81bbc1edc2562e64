// The audit log's records and their hash chain, as plain values: how a record is hashed, how it
// is written as JSON (API, export, JSON Lines sink), and how a sequence of records is verified.
// Each record carries the hash of the one before it (the first, kGenesisHash), and its own
// hash covers every field but its position, so that an edited, removed, inserted or reordered
// record breaks the chain at a place verify_chain() names. No I/O, no clocks: the audit log
// (audit_log.h) stores records, this file decides what they mean. Thread-safe (no state).
#pragma once

#include <array>
#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::controlplane {

// What a record is about.
enum class AuditType {
  kCall,            // tools/call, resources/read, prompts/get from an agent
  kServerRequest,   // sampling / elicitation / roots relayed from a server to the agent
  kAdmin,           // a change made through the admin API or the console
  kAuthFailure,     // a refused or failed authentication (agent key, admin token, connector)
  kToolRefused,     // a call outside the agent key's scope, or with no credential mapped
  kSecretRedacted,  // a connector replaced a secret in what a server returned
  kGap,             // records that could not be written (the writer fell behind)
};
std::string_view to_string(AuditType t);
std::optional<AuditType> parse_audit_type(std::string_view s);

struct AuditRecord {
  int64_t seq = 0;  // position in the log, from 1 (not hashed: the chain is the order)
  int64_t at_ms = 0;
  AuditType type = AuditType::kCall;
  std::string actor;    // the agent, "admin", or who tried to authenticate
  std::string session;  // the agent's MCP session tag
  std::string method;   // JSON-RPC method, or the admin request ("POST /v1/tunnels")
  std::string target;   // tool, prompt or resource URI; the admin change's object
  std::string binding, connector, server;
  std::string remote;  // peer address of the request
  int64_t duration_ms = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  std::string outcome;      // ok | tool_error | error | refused | declined | failed
  std::string error_class;  // timeout | cancelled | unavailable | invalid_params | ...
  uint64_t redactions = 0;
  boost::json::object detail;  // type-specific names and counts; never a secret value
  std::string prev_hash;       // hex SHA-256 of the record before
  std::string hash;            // hex SHA-256 of this record's canonical form
};

inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// The bytes a record's hash covers: its fields (seq excepted) as one JSON object in a fixed
// order, prev_hash included.
std::string canonical_form(const AuditRecord& r);
void canonical_form(const AuditRecord& r, std::string& out);  // into `out`, reusing its buffer
std::string compute_hash(const AuditRecord& r);
// Sets r.prev_hash and r.hash; returns the canonical form the hash covers (the audit log
// stores exactly these bytes).
std::string seal(AuditRecord& r, std::string_view prev_hash);
void seal(AuditRecord& r, std::string_view prev_hash, std::string& canonical);
// The SHA-256 itself, as the audit log stores it: `r.hash` is its hex.
using Digest = std::array<char, 32>;
void seal(AuditRecord& r, std::string_view prev_hash, std::string& canonical, Digest& digest);

// The record as the API, the export and the JSON Lines sink write it.
boost::json::object to_json(const AuditRecord& r);
// The inverse (for verifying an export); false with `error` naming the field.
bool from_json(const boost::json::object& o, AuditRecord& out, std::string& error);
// The record a canonical form holds (seq and hash are not in it); false with `error` set.
bool from_canonical(std::string_view text, AuditRecord& out, std::string& error);
// One JSON Lines line (to_json's object, without its newline) from a sealed record and its
// canonical form, without building the object again.
std::string json_line(const AuditRecord& r, std::string_view canonical);

struct ChainVerdict {
  bool intact = true;
  size_t records = 0;
  std::string head_hash;  // hash of the last record (kGenesisHash for none)
  int64_t head_seq = 0;
  // Where the chain breaks: the first record found wrong, and how.
  int64_t bad_seq = 0;
  std::string problem;  // edited | removed | inserted | reordered | truncated
  std::string message;  // a sentence naming the record
};

// The verdict as the API and `airlock audit verify --json` write it: intact, records,
// head_seq, head_hash, and when broken bad_seq, problem and message.
boost::json::object to_json(const ChainVerdict& v);

// The writer's own record of the last record it wrote, to catch a truncated or extended tail.
struct ChainHead {
  int64_t seq = 0;
  std::string hash;
};

// Verifies `records` in stored order (ascending seq). A long log is verified a window at a
// time: the first `context` records of a window are the end of the one before, already
// verified, there only as what the next records chain to (and are not counted); the rest must
// follow them. A record moved farther than a window is then reported by what it looks like
// from inside the window (edited, inserted or removed), never as intact.
ChainVerdict verify_chain(const std::vector<AuditRecord>& records,
                          const std::optional<ChainHead>& expected_head = std::nullopt,
                          size_t context = 0);

// "2026-11-27T14:08:21.123Z"
std::string format_time_ms(int64_t unix_ms);
// The inverse; nullopt when malformed.
std::optional<int64_t> parse_time_ms(std::string_view s);

}  // namespace airlock::controlplane
