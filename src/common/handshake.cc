#include "common/handshake.h"

#include <boost/json.hpp>

#include "common/json_fields.h"

namespace airlock::proto {
namespace json = boost::json;

std::string_view to_string(ConnectorKind k) {
  return k == ConnectorKind::kTunnel ? "tunnel" : "sandbox";
}

Result<ConnectorKind> parse_connector_kind(std::string_view s) {
  if (s == "tunnel") return ConnectorKind::kTunnel;
  if (s == "sandbox") return ConnectorKind::kSandbox;
  return Errc::kInvalidArgument;
}

bool is_valid_resource_name(std::string_view name) {
  if (name.empty() || name.size() > 63 || name[0] == '.' || name[0] == '-') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string check_limits(const LinkLimits& l) {
  if (l.max_streams < 1 || l.max_streams > 65536) return "limits.max_streams must be 1..65536";
  if (l.initial_window < kMinWindow || l.initial_window > kMaxWindow) {
    return "limits.initial_window must be 65536..2147483647";
  }
  if (l.max_frame_payload < kMinFramePayload || l.max_frame_payload > kMaxFramePayloadCap) {
    return "limits.max_frame_payload must be 16384..1048576";
  }
  return {};
}

namespace {

json::object limits_json(const LinkLimits& l) {
  return {{"max_streams", l.max_streams},
          {"initial_window", l.initial_window},
          {"max_frame_payload", l.max_frame_payload}};
}

bool parse_limits(FieldReader& r, LinkLimits& out, std::string& error) {
  const json::object* lo = r.obj("limits", true);
  if (!lo) return false;
  FieldReader lr(*lo, r.prefix() + "limits.", error);
  if (!lr.u32("max_streams", out.max_streams, true) ||
      !lr.u32("initial_window", out.initial_window, true) ||
      !lr.u32("max_frame_payload", out.max_frame_payload, true)) {
    return false;
  }
  if (auto why = check_limits(out); !why.empty()) {
    error = why;
    return false;
  }
  return true;
}

}  // namespace

std::string serialize(const Hello& h) {
  json::array inventory;
  for (const auto& s : h.inventory) {
    json::array creds(s.credentials.begin(), s.credentials.end());
    json::array tools(s.tools.begin(), s.tools.end());
    inventory.push_back(json::object{{"name", s.name},
                                     {"url", s.url},
                                     {"credentials", std::move(creds)},
                                     {"tools", std::move(tools)}});
  }
  json::object o{{"protocol_version", h.protocol_version},
                 {"kind", to_string(h.kind)},
                 {"software", h.software},
                 {"limits", limits_json(h.limits)},
                 {"inventory", std::move(inventory)}};
  if (!h.name.empty()) o["name"] = h.name;
  if (!h.instance.empty()) o["instance"] = h.instance;
  if (h.sandbox) {
    const auto& d = *h.sandbox;
    o["sandbox"] = json::object{
        {"image", d.image},
        {"image_digest", d.image_digest},
        {"cpu", d.cpu},
        {"memory", d.memory},
        {"pids", d.pids},
        {"allowed_outbound", json::array(d.allowed_outbound.begin(), d.allowed_outbound.end())},
        {"max_sessions", d.max_sessions}};
  }
  return json::serialize(o);
}

std::string serialize(const Accept& a) {
  return json::serialize(json::object{{"protocol_version", a.protocol_version},
                                      {"connection_id", a.connection_id},
                                      {"name", a.name},
                                      {"limits", limits_json(a.limits)},
                                      {"heartbeat_interval_ms", a.heartbeat_interval.count()},
                                      {"dead_peer_timeout_ms", a.dead_peer_timeout.count()}});
}

bool parse_hello(std::string_view text, Hello& out, std::string& error) {
  error.clear();
  out = Hello{};
  json::value v;
  if (!parse_json_object(text, v, error)) return false;
  FieldReader r(v.as_object(), "hello.", error);
  std::string kind;
  if (!r.u32("protocol_version", out.protocol_version, true)) return false;
  if (out.protocol_version != kProtocolVersion) {
    error = "protocol version mismatch: connector speaks " +
            std::to_string(out.protocol_version) + ", airlockd speaks " +
            std::to_string(kProtocolVersion);
    return false;
  }
  if (!r.str("kind", kind, true)) return false;
  auto k = parse_connector_kind(kind);
  if (!k) return r.bad("kind", "must be \"tunnel\" or \"sandbox\"");
  out.kind = *k;
  if (!r.str("name", out.name, false, 63) || !r.str("software", out.software, false, 128)) {
    return false;
  }
  if (!out.name.empty() && !is_valid_resource_name(out.name)) {
    return r.bad("name", "must be 1-63 characters of [A-Za-z0-9_.-]");
  }
  if (!r.str("instance", out.instance, false, 64)) return false;
  if (const json::object* so = r.obj("sandbox", false)) {
    FieldReader sr(*so, "hello.sandbox.", error);
    SandboxDescription d;
    uint32_t max_sessions = 0;
    if (!sr.str("image", d.image, false, 1024) || !sr.str("image_digest", d.image_digest, false, 71) ||
        !sr.str("cpu", d.cpu, false, 32) ||
        !sr.str("memory", d.memory, false, 32) || !sr.u64("pids", d.pids, false, 1u << 22) ||
        !sr.str_list("allowed_outbound", d.allowed_outbound, 1024) ||
        !sr.u32("max_sessions", max_sessions, false)) {
      return false;
    }
    d.max_sessions = max_sessions;
    out.sandbox = std::move(d);
  } else if (!r.ok()) {
    return false;
  }
  if (!parse_limits(r, out.limits, error)) return false;
  if (const json::array* inv = r.arr("inventory")) {
    if (inv->size() > 1024) return r.bad("inventory", "has more than 1024 servers");
    for (size_t i = 0; i < inv->size(); ++i) {
      if (!(*inv)[i].is_object()) return r.bad("inventory", "items must be objects");
      FieldReader sr((*inv)[i].as_object(), "hello.inventory[" + std::to_string(i) + "].", error);
      InventoryServer s;
      if (!sr.str("name", s.name, true) || !sr.str("url", s.url, false, 2048) ||
          !sr.str_list("credentials", s.credentials, 256) ||
          !sr.str_list("tools", s.tools, 4096)) {
        return false;
      }
      out.inventory.push_back(std::move(s));
    }
  }
  return r.ok();
}

bool parse_accept(std::string_view text, Accept& out, std::string& error) {
  error.clear();
  out = Accept{};
  json::value v;
  if (!parse_json_object(text, v, error)) return false;
  FieldReader r(v.as_object(), "accept.", error);
  if (!r.u32("protocol_version", out.protocol_version, true)) return false;
  if (out.protocol_version != kProtocolVersion) {
    error = "protocol version mismatch: airlockd speaks " +
            std::to_string(out.protocol_version) + ", this connector speaks " +
            std::to_string(kProtocolVersion);
    return false;
  }
  uint32_t hb = 0, dead = 0;
  if (!r.str("connection_id", out.connection_id, true) || !r.str("name", out.name, true, 63) ||
      !r.u32("heartbeat_interval_ms", hb, true) || !r.u32("dead_peer_timeout_ms", dead, true)) {
    return false;
  }
  if (hb < 100 || dead <= hb) {
    return r.bad("heartbeat_interval_ms", "must be >= 100 and below dead_peer_timeout_ms");
  }
  out.heartbeat_interval = std::chrono::milliseconds(hb);
  out.dead_peer_timeout = std::chrono::milliseconds(dead);
  return parse_limits(r, out.limits, error);
}

}  // namespace airlock::proto
