#include "common/stream_contract.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "common/json_fields.h"

namespace airlock::proto {
namespace json = boost::json;

std::string_view to_string(StreamKind k) {
  switch (k) {
    case StreamKind::kMcp: return "mcp";
    case StreamKind::kInventory: return "inventory";
    case StreamKind::kEvents: return "events";
    case StreamKind::kLoad: return "load";
  }
  return "unknown";
}

std::optional<StreamKind> parse_stream_kind(std::string_view kind) {
  for (auto k : {StreamKind::kMcp, StreamKind::kInventory, StreamKind::kEvents, StreamKind::kLoad}) {
    if (kind == to_string(k)) return k;
  }
  return std::nullopt;
}

std::string stream_meta(StreamKind k) {
  return json::serialize(json::object{{"kind", to_string(k)}});
}

std::string stream_kind_of(std::string_view meta) {
  json::value v;
  std::string error;
  if (!parse_json_object(meta, v, error, kMaxMessageDepth)) return "(none)";
  auto* k = v.as_object().if_contains("kind");
  if (!k || !k->is_string() || k->as_string().empty() || k->as_string().size() > 64) {
    return "(none)";
  }
  return std::string(k->as_string());
}

// ---- mcp ------------------------------------------------------------------------------------

std::string serialize(const McpStreamOpen& m) {
  json::object o{{"kind", to_string(StreamKind::kMcp)},
                 {"server", m.server},
                 {"agent", m.agent},
                 {"session", m.session},
                 {"client", m.client}};
  if (!m.credential.empty()) o["credential"] = m.credential;
  if (m.stateless) o["stateless"] = true;
  return json::serialize(o);
}

bool parse_mcp_open(std::string_view meta, McpStreamOpen& out, std::string& error) {
  error.clear();
  out = McpStreamOpen{};
  json::value v;
  if (!parse_json_object(meta, v, error, kMaxMessageDepth)) {
    error = "mcp stream meta " + error;
    return false;
  }
  FieldReader r(v.as_object(), "mcp stream meta.", error);
  std::string kind;
  if (!r.str("kind", kind, true, 64)) return false;
  if (kind != to_string(StreamKind::kMcp)) return r.bad("kind", "must be \"mcp\"");
  if (!r.str("server", out.server, true, 2048) || !r.str("agent", out.agent, true, 128) ||
      !r.str("session", out.session, false, 64) ||
      !r.str("credential", out.credential, false, 128) || !r.boolean("stateless", out.stateless)) {
    return false;
  }
  if (out.server.empty()) return r.bad("server", "must not be empty");
  if (out.agent.empty()) return r.bad("agent", "must not be empty");
  if (const json::object* client = r.obj("client", false)) out.client = *client;
  return r.ok();
}

std::string serialize_line(const McpEnvelope& e) {
  return serialize_line(json::serialize(e.message), e.related, e.redactions);
}

std::string serialize_line(std::string_view message_json, const std::optional<json::value>& related,
                           uint64_t redactions) {
  std::string line = "{\"message\":";
  line.append(message_json);
  if (related) line += ",\"related\":" + json::serialize(*related);
  if (redactions) line += ",\"redactions\":" + std::to_string(redactions);
  line += "}\n";
  return line;
}

bool parse_envelope(std::string_view line, McpEnvelope& out, std::string& error) {
  error.clear();
  out = McpEnvelope{};
  json::value v;
  if (!parse_json_object(line, v, error, kMaxMessageDepth)) {
    error = "envelope " + error;
    return false;
  }
  auto& o = v.as_object();
  FieldReader r(o, "envelope.", error);
  if (!r.obj("message", true)) return false;
  if (auto* rel = o.if_contains("related")) {
    if (!rel->is_string() && !rel->is_int64() && !rel->is_uint64()) {
      return r.bad("related", "must be a request id (a string or an integer)");
    }
    out.related = std::move(*rel);
  }
  if (auto* n = o.if_contains("redactions")) {
    if (!n->is_uint64() && !(n->is_int64() && n->as_int64() >= 0)) {
      return r.bad("redactions", "must be a non-negative integer");
    }
    out.redactions = n->is_uint64() ? n->as_uint64() : static_cast<uint64_t>(n->as_int64());
  }
  out.message = std::move(o["message"].as_object());
  return true;
}

// ---- inventory ------------------------------------------------------------------------------

std::string serialize(const InventoryReport& r) {
  json::array servers;
  for (const auto& s : r.servers) servers.push_back(s);
  return json::serialize(json::object{{"servers", std::move(servers)}});
}

bool parse_inventory(std::string_view body, InventoryReport& out, std::string& error) {
  error.clear();
  out = InventoryReport{};
  json::value v;
  if (!parse_json_object(body, v, error, kMaxMessageDepth)) {
    error = "inventory " + error;
    return false;
  }
  FieldReader r(v.as_object(), "inventory.", error);
  const json::array* servers = r.arr("servers");
  if (!servers) return r.ok() ? r.bad("servers", "is required") : false;
  if (servers->size() > kMaxInventoryServers) {
    return r.bad("servers", "has more than " + std::to_string(kMaxInventoryServers) + " items");
  }
  for (size_t i = 0; i < servers->size(); ++i) {
    const std::string path = "inventory.servers[" + std::to_string(i) + "].";
    if (!(*servers)[i].is_object()) {
      error = path.substr(0, path.size() - 1) + " must be an object";
      return false;
    }
    const json::object& s = (*servers)[i].as_object();
    FieldReader sr(s, path, error);
    std::string name, status, why;
    if (!sr.str("name", name, true) || !sr.str("status", status, false, 32) ||
        !sr.str("error", why, false, 64 * 1024)) {
      return false;
    }
    if (name.empty()) return sr.bad("name", "must not be empty");
    if (!status.empty() && status != "ok" && status != "pending" && status != "unavailable") {
      return sr.bad("status", "must be \"ok\", \"pending\" or \"unavailable\"");
    }
    for (const char* list : {"tools", "prompts", "resources", "resourceTemplates"}) {
      if (!sr.arr(list) && !sr.ok()) return false;
    }
    out.servers.push_back(s);
  }
  return true;
}

// ---- events ---------------------------------------------------------------------------------

std::string serialize(const std::vector<RedactionEvent>& events) {
  std::string body;
  for (const auto& e : events) {
    body += json::serialize(json::object{{"type", "secret_redacted"},
                                         {"secret", e.secret},
                                         {"server", e.server},
                                         {"tool", e.tool},
                                         {"agent", e.agent},
                                         {"count", e.count}});
    body += '\n';
  }
  return body;
}

RedactionEvents parse_redaction_events(std::string_view body) {
  RedactionEvents out;
  size_t from = 0;
  while (from < body.size()) {
    size_t nl = body.find('\n', from);
    if (nl == std::string_view::npos) nl = body.size();
    const std::string_view line = body.substr(from, nl - from);
    from = nl + 1;
    if (line.empty()) continue;
    json::value v;
    std::string error;
    if (!parse_json_object(line, v, error)) {
      ++out.malformed;
      continue;
    }
    FieldReader r(v.as_object(), "event.", error);
    RedactionEvent e;
    std::string type;
    const bool valid = r.str("type", type, true, 64) && type == "secret_redacted" &&
                       r.str("secret", e.secret, true) && !e.secret.empty() &&
                       r.str("server", e.server, true) && r.str("tool", e.tool, true) &&
                       r.str("agent", e.agent, true) &&
                       r.u64("count", e.count, true, UINT64_MAX) && e.count > 0;
    if (!valid) {
      ++out.malformed;
      continue;
    }
    out.events.push_back(std::move(e));
  }
  return out;
}

// ---- load -----------------------------------------------------------------------------------

std::string serialize(const SessionLoad& l) {
  return json::serialize(json::object{{"sessions_in_use", l.in_use}, {"max_sessions", l.limit}});
}

bool parse_session_load(std::string_view body, SessionLoad& out, std::string& error) {
  error.clear();
  out = SessionLoad{};
  json::value v;
  if (!parse_json_object(body, v, error)) {
    error = "load " + error;
    return false;
  }
  FieldReader r(v.as_object(), "load.", error);
  return r.u32("sessions_in_use", out.in_use, true) && r.u32("max_sessions", out.limit, true);
}

}  // namespace airlock::proto
