// The egress allowlist: which destinations a sandboxed run may reach through the egress proxy.
// Sans-IO: plain code over names and addresses; the proxy (egress_proxy.h) resolves and dials,
// this decides. Immutable after build(); share it between threads freely.
//
// Semantics (docs/sandbox.md):
// - "api.example.com" matches that name only; "*.example.com" matches any name below it
//   ("a.example.com", "a.b.example.com") but not "example.com" itself. Names compare without
//   case and without a trailing dot. ":PORT" restricts an entry to one port; without it any
//   port is allowed.
// - IP literals ("10.1.2.3", "[fd00::1]:8443") and CIDRs ("10.20.0.0/16", "fd00::/8") allow
//   requests to those addresses by literal, and allow names that resolve into them when those
//   addresses would otherwise be refused (private ranges, loopback).
// - Every address a name resolves to is checked before it is dialed: unspecified, multicast,
//   broadcast and cloud metadata addresses are always refused; loopback, link-local, private
//   (RFC 1918, CGNAT, ULA) and the host's own addresses only pass when an IP or CIDR entry
//   covers them. IPv4-mapped and NAT64 IPv6 addresses are checked as the IPv4 they carry.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::sandbox {

struct AllowEntry {
  enum class Kind { kName, kSubdomains, kNetwork };
  Kind kind = Kind::kName;
  std::string name;  // lower case, no trailing dot; for kSubdomains the part after "*."
  boost::asio::ip::address network;
  unsigned prefix = 0;  // bits of `network` that must match
  uint16_t port = 0;    // 0: any port
};

// Parses one allowed_outbound entry; nullopt with `error` saying what is wrong.
std::optional<AllowEntry> parse_allow_entry(std::string_view text, std::string& error);

// Whether a name entry ("api.example.com", "*.example.com") covers `name`, which is normalized
// (normalize_host); network entries cover no name. The port is not looked at.
bool names_match(const AllowEntry& entry, std::string_view name);

// An address with the IPv4 it stands for unwrapped (IPv4-mapped, NAT64 well-known prefix).
boost::asio::ip::address canonical_address(const boost::asio::ip::address& a);

class Allowlist {
 public:
  Allowlist() = default;
  // Throws std::invalid_argument naming the first bad entry.
  explicit Allowlist(const std::vector<std::string>& entries);

  // Addresses of the machine the proxy runs on; they count as refused unless listed.
  void set_host_addresses(std::vector<boost::asio::ip::address> addresses);

  // Whether a request for `host` (a name or an IP literal, as the client wrote it) on `port`
  // may go on to resolution; otherwise the reason.
  std::optional<std::string> refuse_request(std::string_view host, uint16_t port) const;
  // Whether `address` (resolved from an allowed name, or the literal itself) may be dialed
  // on `port`; otherwise the reason.
  std::optional<std::string> refuse_address(const boost::asio::ip::address& address,
                                            uint16_t port) const;

  bool empty() const { return entries_.empty(); }

 private:
  bool network_covers(const boost::asio::ip::address& a, uint16_t port) const;

  std::vector<AllowEntry> entries_;
  std::vector<boost::asio::ip::address> host_addresses_;
};

// Lower-cases and strips one trailing dot: the form names are compared in.
std::string normalize_host(std::string_view host);

}  // namespace airlock::sandbox
