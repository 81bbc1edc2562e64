#include "controlplane/origin_policy.h"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>

namespace airlock::controlplane {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

}  // namespace

std::optional<std::string> normalize_origin(std::string_view origin) {
  auto u = boost::urls::parse_absolute_uri(origin);
  if (!u) return std::nullopt;
  const std::string scheme = lower(u->scheme());
  if (scheme != "http" && scheme != "https") return std::nullopt;
  // An origin is scheme, host and port only.
  if (!u->has_authority() || u->has_userinfo() || !u->encoded_path().empty() || u->has_query() ||
      u->has_fragment() || u->encoded_host().empty()) {
    return std::nullopt;
  }
  std::string host = lower(u->encoded_host());
  std::string out = scheme + "://" + host;
  if (u->has_port() && !u->port().empty()) {
    const std::string port(u->port());
    if (!((scheme == "http" && port == "80") || (scheme == "https" && port == "443"))) {
      out += ":" + port;
    }
  }
  return out;
}

bool is_loopback_origin(std::string_view origin) {
  auto u = boost::urls::parse_absolute_uri(origin);
  if (!u || !normalize_origin(origin)) return false;
  const std::string host = lower(u->encoded_host());
  if (host == "localhost") return true;
  std::string literal = host;
  if (literal.size() > 2 && literal.front() == '[' && literal.back() == ']') {
    literal = literal.substr(1, literal.size() - 2);
  }
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(literal, ec);
  if (ec) return false;
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, addr.to_v6()).is_loopback();
  }
  return addr.is_loopback();
}

OriginPolicy::OriginPolicy(const std::vector<std::string>& allowed,
                           const std::vector<std::string>& hostnames, uint16_t port,
                           std::string_view scheme) {
  for (const auto& a : allowed) {
    if (a == "*") {
      any_ = true;
    } else if (auto n = normalize_origin(a)) {
      allowed_.push_back(*n);
    }
  }
  for (std::string host : hostnames) {
    if (host.empty() || host == "0.0.0.0" || host == "::") continue;  // not a name a page has
    if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
    if (auto n = normalize_origin(std::string(scheme) + "://" + host + ":" + std::to_string(port))) {
      if (std::find(own_.begin(), own_.end(), *n) == own_.end()) own_.push_back(*n);
    }
  }
}

bool OriginPolicy::allows(std::string_view origin) const {
  if (any_ || is_loopback_origin(origin)) return true;
  const auto n = normalize_origin(origin);
  if (!n) return false;
  return std::find(own_.begin(), own_.end(), *n) != own_.end() ||
         std::find(allowed_.begin(), allowed_.end(), *n) != allowed_.end();
}

}  // namespace airlock::controlplane
