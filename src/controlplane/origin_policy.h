// OriginPolicy: which browser origins /mcp serves — the DNS-rebinding protection the MCP
// transport requires. A request without an Origin header is not from a browser page and is
// always served; one with an Origin is served when that origin is a loopback one
// (http(s)://localhost, 127.0.0.0/8 or [::1], any port: pages on the agent's own machine), one
// of airlockd's own (its tls.hostnames and listen address on the port it serves), or listed in
// mcp.allowed_origins. Every other origin — a page whose name was rebound to airlockd's
// address among them — is refused. Plain values; built once at start-up, then read-only.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::controlplane {

// "scheme://host[:port]" lower-cased, IPv6 hosts bracketed, the scheme's default port
// dropped; nullopt when `origin` is not an http(s) origin (an opaque "null" among others).
std::optional<std::string> normalize_origin(std::string_view origin);
bool is_loopback_origin(std::string_view origin);

class OriginPolicy {
 public:
  OriginPolicy() = default;
  // `allowed`: mcp.allowed_origins ("*" accepts any); `hostnames` and `port`: where airlockd
  // serves, giving its own origins under `scheme`.
  OriginPolicy(const std::vector<std::string>& allowed, const std::vector<std::string>& hostnames,
               uint16_t port, std::string_view scheme);

  bool allows(std::string_view origin) const;
  const std::vector<std::string>& own_origins() const { return own_; }

 private:
  bool any_ = false;
  std::vector<std::string> allowed_;  // normalized
  std::vector<std::string> own_;      // normalized
};

}  // namespace airlock::controlplane
