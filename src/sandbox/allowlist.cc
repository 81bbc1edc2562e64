#include "sandbox/allowlist.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace airlock::sandbox {
namespace ip = boost::asio::ip;
namespace {

std::optional<uint16_t> parse_port(std::string_view text) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v == 0 || v > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(v);
}

bool is_dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      if (label == 0 || label > 63) return false;
      if (name[i - 1] == '-' || name[i - label] == '-') return false;
      label = 0;
      continue;
    }
    const char c = name[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    ++label;
  }
  return true;
}

std::optional<ip::address> parse_address(std::string_view text) {
  boost::system::error_code ec;
  auto a = ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  return a;
}

bool in_prefix(const ip::address& a, const ip::address& net, unsigned prefix) {
  if (a.is_v4() != net.is_v4()) return false;
  if (a.is_v4()) {
    const uint32_t x = a.to_v4().to_uint(), n = net.to_v4().to_uint();
    if (prefix == 0) return true;
    const uint32_t mask = prefix >= 32 ? 0xffffffffu : ~((uint32_t{1} << (32 - prefix)) - 1);
    return (x & mask) == (n & mask);
  }
  const auto x = a.to_v6().to_bytes(), n = net.to_v6().to_bytes();
  unsigned bits = prefix;
  for (size_t i = 0; i < 16 && bits > 0; ++i) {
    const unsigned take = std::min(bits, 8u);
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - take));
    if ((x[i] & mask) != (n[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

bool in_v4(const ip::address& a, const char* net, unsigned prefix) {
  return in_prefix(a, ip::make_address(net), prefix);
}

// Address classes that need an explicit IP/CIDR entry. nullopt: an ordinary public address.
std::optional<std::string> special_class(const ip::address& a) {
  if (a.is_v4()) {
    if (in_v4(a, "127.0.0.0", 8)) return "loopback";
    if (in_v4(a, "169.254.0.0", 16)) return "link-local";
    if (in_v4(a, "10.0.0.0", 8) || in_v4(a, "172.16.0.0", 12) || in_v4(a, "192.168.0.0", 16)) {
      return "a private (RFC 1918) address";
    }
    if (in_v4(a, "100.64.0.0", 10)) return "a shared (CGNAT) address";
    if (in_v4(a, "0.0.0.0", 8)) return "a 'this network' address";
    if (in_v4(a, "192.0.0.0", 24) || in_v4(a, "198.18.0.0", 15) || in_v4(a, "240.0.0.0", 4)) {
      return "a reserved address";
    }
    return std::nullopt;
  }
  const auto b = a.to_v6().to_bytes();
  if (a.is_loopback()) return "loopback";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "link-local";
  if ((b[0] & 0xfe) == 0xfc) return "a private (ULA) address";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return "a site-local address";
  // 6to4 and Teredo carry IPv4 addresses the proxy cannot check: need explicit listing.
  if (b[0] == 0x20 && b[1] == 0x02) return "a 6to4 address";
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) return "a Teredo address";
  // Remaining ::/96-style forms (IPv4-compatible, deprecated).
  if (std::all_of(b.begin(), b.begin() + 12, [](uint8_t x) { return x == 0; })) {
    return "an IPv4-compatible IPv6 address";
  }
  return std::nullopt;
}

// Never dialed, whatever the list says.
std::optional<std::string> forbidden_class(const ip::address& a) {
  if (a.is_unspecified()) return "the unspecified address";
  if (a.is_multicast()) return "a multicast address";
  if (a.is_v4()) {
    if (a.to_v4().to_uint() == 0xffffffffu) return "the broadcast address";
    for (const char* m : {"169.254.169.254", "100.100.100.200", "168.63.129.16", "169.254.170.2"}) {
      if (a == ip::make_address(m)) return "a cloud metadata address";
    }
    return std::nullopt;
  }
  if (a == ip::make_address("fd00:ec2::254")) return "a cloud metadata address";
  return std::nullopt;
}

}  // namespace

std::string normalize_host(std::string_view host) {
  std::string out(host);
  if (!out.empty() && out.back() == '.') out.pop_back();
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

ip::address canonical_address(const ip::address& a) {
  if (!a.is_v6()) return a;
  const auto v6 = a.to_v6();
  if (v6.is_v4_mapped()) return ip::make_address_v4(ip::v4_mapped, v6);
  const auto b = v6.to_bytes();
  static constexpr std::array<uint8_t, 12> kNat64 = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::equal(kNat64.begin(), kNat64.end(), b.begin())) {
    return ip::address_v4(ip::address_v4::bytes_type{b[12], b[13], b[14], b[15]});
  }
  return a;
}

std::optional<AllowEntry> parse_allow_entry(std::string_view text, std::string& error) {
  AllowEntry e;
  std::string_view host = text;
  if (text.empty()) {
    error = "an empty entry allows nothing; remove it";
    return std::nullopt;
  }
  if (text == "*" || text.rfind("*:", 0) == 0) {
    error = "'" + std::string(text) + "' would allow every host; list the hosts or domains "
            "(\"*.example.com\") the tool needs";
    return std::nullopt;
  }
  // Port: "[v6]:port", "host:port", "1.2.3.4:port". A bare IPv6 literal has several colons.
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      error = "'" + std::string(text) + "' has '[' without ']'";
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || !parse_port(rest.substr(1))) {
        error = "'" + std::string(text) + "': expected ':PORT' (1-65535) after ']'";
        return std::nullopt;
      }
      e.port = *parse_port(rest.substr(1));
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    const size_t colon = text.find(':');
    auto port = parse_port(text.substr(colon + 1));
    if (!port) {
      error = "'" + std::string(text) + "': port must be 1-65535";
      return std::nullopt;
    }
    e.port = *port;
    host = text.substr(0, colon);
  }
  // CIDR.
  if (const size_t slash = host.find('/'); slash != std::string_view::npos) {
    auto net = parse_address(host.substr(0, slash));
    unsigned prefix = 0;
    auto len = host.substr(slash + 1);
    auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
    if (!net || ec != std::errc() || p != len.data() + len.size() ||
        prefix > (net->is_v4() ? 32u : 128u)) {
      error = "'" + std::string(text) + "' is not a CIDR such as 10.20.0.0/16 or fd00::/8";
      return std::nullopt;
    }
    e.kind = AllowEntry::Kind::kNetwork;
    e.network = *net;
    e.prefix = prefix;
    return e;
  }
  if (auto a = parse_address(host)) {
    e.kind = AllowEntry::Kind::kNetwork;
    e.network = canonical_address(*a);
    e.prefix = e.network.is_v4() ? 32 : 128;
    return e;
  }
  std::string name = normalize_host(host);
  if (name.rfind("*.", 0) == 0) {
    e.kind = AllowEntry::Kind::kSubdomains;
    name = name.substr(2);
  }
  if (name.find('*') != std::string::npos) {
    error = "'" + std::string(text) + "': '*' is allowed only as the first label (\"*.example.com\")";
    return std::nullopt;
  }
  if (!is_dns_name(name)) {
    error = "'" + std::string(text) + "' is not a host name, '*.domain', IP address or CIDR";
    return std::nullopt;
  }
  e.name = std::move(name);
  return e;
}

Allowlist::Allowlist(const std::vector<std::string>& entries) {
  for (const auto& text : entries) {
    std::string error;
    auto e = parse_allow_entry(text, error);
    if (!e) throw std::invalid_argument("allowed_outbound: " + error);
    entries_.push_back(std::move(*e));
  }
}

void Allowlist::set_host_addresses(std::vector<ip::address> addresses) {
  host_addresses_.clear();
  for (const auto& a : addresses) host_addresses_.push_back(canonical_address(a));
}

bool Allowlist::network_covers(const ip::address& a, uint16_t port) const {
  for (const auto& e : entries_) {
    if (e.kind != AllowEntry::Kind::kNetwork) continue;
    if (e.port != 0 && e.port != port) continue;
    if (in_prefix(a, e.network, e.prefix)) return true;
  }
  return false;
}

bool names_match(const AllowEntry& e, std::string_view name) {
  if (e.kind == AllowEntry::Kind::kName) return name == e.name;
  if (e.kind != AllowEntry::Kind::kSubdomains) return false;
  return name.size() > e.name.size() + 1 && name.ends_with(e.name) &&
         name[name.size() - e.name.size() - 1] == '.';
}

std::optional<std::string> Allowlist::refuse_request(std::string_view host, uint16_t port) const {
  if (port == 0) return "port 0 is not a destination";
  std::string_view bare = host;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') {
    bare = bare.substr(1, bare.size() - 2);
  }
  if (auto a = parse_address(bare)) {
    const auto c = canonical_address(*a);
    if (!network_covers(c, port)) {
      return "the address " + c.to_string() + " (port " + std::to_string(port) +
             ") is not in allowed_outbound; IP addresses must be listed themselves";
    }
    return std::nullopt;
  }
  const std::string name = normalize_host(host);
  if (!is_dns_name(name)) return "'" + std::string(host) + "' is not a host name";
  bool name_listed = false;
  for (const auto& e : entries_) {
    if (!names_match(e, name)) continue;
    name_listed = true;
    if (e.port == 0 || e.port == port) return std::nullopt;
  }
  if (name_listed) {
    return "port " + std::to_string(port) + " of '" + name + "' is not in allowed_outbound";
  }
  return "'" + name + "' is not in allowed_outbound";
}

std::optional<std::string> Allowlist::refuse_address(const ip::address& address,
                                                     uint16_t port) const {
  const auto a = canonical_address(address);
  if (auto why = forbidden_class(a)) return a.to_string() + " is " + *why + ", never allowed";
  if (network_covers(a, port)) return std::nullopt;
  if (auto why = special_class(a)) {
    return a.to_string() + " is " + *why + "; allowed only when listed as an IP or CIDR";
  }
  if (std::find(host_addresses_.begin(), host_addresses_.end(), a) != host_addresses_.end()) {
    return a.to_string() + " is an address of this host; allowed only when listed";
  }
  return std::nullopt;
}

}  // namespace airlock::sandbox
