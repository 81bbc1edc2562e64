#include "controlplane/config.h"

#include <boost/asio/ip/address.hpp>

#include <charconv>

#include "common/config_util.h"
#include "common/handshake.h"
#include "controlplane/origin_policy.h"

namespace airlock::controlplane {

void parse_listen(const std::string& text, std::string& host, uint16_t& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    throw ConfigError("listen '" + text + "' must be HOST:PORT, e.g. 0.0.0.0:8443");
  }
  host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  if (ec) throw ConfigError("listen host '" + host + "' must be an IP address");
  const std::string digits = text.substr(colon + 1);
  unsigned value = 0;
  auto [ptr, ec2] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || ec2 != std::errc() || ptr != digits.data() + digits.size() ||
      value > 65535) {
    throw ConfigError("listen port in '" + text + "' must be 0..65535");
  }
  port = static_cast<uint16_t>(value);
}

AirlockdConfig parse_airlockd_config(const std::string& yaml_text, const std::string& origin) {
  AirlockdConfig c;
  YAML::Node root = load_yaml_string(yaml_text, origin);
  if (!root || root.IsNull()) return c;
  expect_keys(root, "",
              {"listen", "state_dir", "tls", "connectors", "max_request_body", "log_level", "mcp",
               "tools", "audit"});
  if (auto a = root["audit"]) {
    expect_keys(a, "audit", {"enabled", "jsonl_file", "max_backlog"});
    if (auto n = a["enabled"]) c.audit.enabled = read_bool(n, "audit.enabled");
    if (auto n = a["jsonl_file"]) c.audit.jsonl_file = read_string(n, "audit.jsonl_file");
    if (auto n = a["max_backlog"]) c.audit.max_backlog = read_uint(n, "audit.max_backlog");
    if (c.audit.max_backlog < 100) throw ConfigError("audit.max_backlog must be at least 100");
  }
  if (auto n = root["tools"]) c.tools = parse_bindings(n, "tools");
  if (auto m = root["mcp"]) {
    expect_keys(m, "mcp", {"allowed_origins", "session_idle_timeout", "max_sessions", "page_size",
                           "sse_keepalive", "sse_retry"});
    if (auto n = m["allowed_origins"]) {
      if (!n.IsSequence()) throw ConfigError("mcp.allowed_origins must be a list of origins");
      for (size_t i = 0; i < n.size(); ++i) {
        const std::string key = "mcp.allowed_origins[" + std::to_string(i) + "]";
        std::string origin = read_string(n[i], key);
        if (origin != "*" && !normalize_origin(origin)) {
          throw ConfigError(key + ": '" + origin +
                            "' is not an origin; write scheme://host[:port], e.g. "
                            "https://console.example.com, or \"*\"");
        }
        c.mcp.allowed_origins.push_back(std::move(origin));
      }
    }
    if (auto n = m["session_idle_timeout"]) {
      c.mcp.session_idle_timeout = read_duration(n, "mcp.session_idle_timeout");
    }
    if (auto n = m["max_sessions"]) c.mcp.max_sessions = read_uint(n, "mcp.max_sessions");
    if (auto n = m["page_size"]) c.mcp.page_size = read_uint(n, "mcp.page_size");
    if (auto n = m["sse_keepalive"]) c.mcp.sse_keepalive = read_duration(n, "mcp.sse_keepalive");
    if (auto n = m["sse_retry"]) c.mcp.sse_retry = read_duration(n, "mcp.sse_retry");
    if (c.mcp.page_size == 0) throw ConfigError("mcp.page_size must be at least 1");
    if (c.mcp.sse_keepalive.count() < 100) throw ConfigError("mcp.sse_keepalive must be >= 100ms");
  }
  if (auto n = root["listen"]) parse_listen(read_string(n, "listen"), c.listen_host, c.listen_port);
  if (auto n = root["state_dir"]) c.state_dir = read_string(n, "state_dir");
  if (auto n = root["max_request_body"]) c.max_request_body = read_byte_size(n, "max_request_body");
  if (auto n = root["log_level"]) c.log_level = read_string(n, "log_level");
  if (auto tls = root["tls"]) {
    expect_keys(tls, "tls", {"cert_file", "key_file", "hostnames", "plaintext"});
    if (auto n = tls["cert_file"]) c.tls.cert_file = read_string(n, "tls.cert_file");
    if (auto n = tls["key_file"]) c.tls.key_file = read_string(n, "tls.key_file");
    if (auto n = tls["plaintext"]) c.tls.plaintext = read_bool(n, "tls.plaintext");
    if (auto n = tls["hostnames"]) {
      if (!n.IsSequence()) throw ConfigError("tls.hostnames must be a list of names");
      c.tls.hostnames.clear();
      for (size_t i = 0; i < n.size(); ++i) {
        c.tls.hostnames.push_back(read_string(n[i], "tls.hostnames[" + std::to_string(i) + "]"));
      }
    }
  }
  if (auto conn = root["connectors"]) {
    expect_keys(conn, "connectors", {"heartbeat_interval", "dead_peer_timeout", "drain_timeout",
                                     "max_streams", "initial_window", "max_frame_payload"});
    auto& k = c.connectors;
    if (auto n = conn["heartbeat_interval"]) {
      k.heartbeat_interval = read_duration(n, "connectors.heartbeat_interval");
    }
    if (auto n = conn["dead_peer_timeout"]) {
      k.dead_peer_timeout = read_duration(n, "connectors.dead_peer_timeout");
    }
    if (auto n = conn["drain_timeout"]) k.drain_timeout = read_duration(n, "connectors.drain_timeout");
    if (auto n = conn["max_streams"]) {
      k.limits.max_streams = static_cast<uint32_t>(read_uint(n, "connectors.max_streams"));
    }
    if (auto n = conn["initial_window"]) {
      k.limits.initial_window =
          static_cast<uint32_t>(read_byte_size(n, "connectors.initial_window"));
    }
    if (auto n = conn["max_frame_payload"]) {
      k.limits.max_frame_payload =
          static_cast<uint32_t>(read_byte_size(n, "connectors.max_frame_payload"));
    }
  }
  validate(c);
  return c;
}

AirlockdConfig load_airlockd_config(const std::string& path) {
  YAML::Node root = load_yaml_file(path);
  return parse_airlockd_config(YAML::Dump(root), path);
}

void validate(const AirlockdConfig& c) {
  if (c.tls.plaintext) {
    boost::system::error_code ec;
    auto addr = boost::asio::ip::make_address(c.listen_host, ec);
    if (ec || !addr.is_loopback()) {
      throw ConfigError("tls.plaintext is only allowed when listen is a loopback address (got " +
                        c.listen_host + "); tokens would cross the network in clear");
    }
  }
  if (c.tls.cert_file.empty() != c.tls.key_file.empty()) {
    throw ConfigError("tls.cert_file and tls.key_file must be given together");
  }
  if (c.state_dir.empty()) throw ConfigError("state_dir must not be empty");
  const auto& k = c.connectors;
  if (k.heartbeat_interval < std::chrono::milliseconds(100) ||
      k.dead_peer_timeout <= k.heartbeat_interval) {
    throw ConfigError(
        "connectors.heartbeat_interval must be >= 100ms and below connectors.dead_peer_timeout");
  }
  if (auto why = proto::check_limits(k.limits); !why.empty()) {
    throw ConfigError("connectors." + why.substr(std::string("limits.").size()));
  }
  if (c.max_request_body < 1024) throw ConfigError("max_request_body must be at least 1KiB");
}

}  // namespace airlock::controlplane
