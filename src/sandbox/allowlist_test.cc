#include "sandbox/allowlist.h"

#include <gtest/gtest.h>

namespace airlock::sandbox {
namespace {
namespace ip = boost::asio::ip;

TEST(Allowlist, NamesAndSubdomains) {
  Allowlist a({"*.internal-api.example.com", "exact.example.org", "api.example.net:443"});
  EXPECT_FALSE(a.refuse_request("svc.internal-api.example.com", 443));
  EXPECT_FALSE(a.refuse_request("a.b.internal-api.example.com", 8080));
  EXPECT_FALSE(a.refuse_request("SVC.Internal-API.example.com.", 443));  // case, trailing dot
  // "*.domain" is subdomains only, not the apex, and not look-alikes.
  EXPECT_TRUE(a.refuse_request("internal-api.example.com", 443));
  EXPECT_TRUE(a.refuse_request("evilinternal-api.example.com", 443));
  EXPECT_TRUE(a.refuse_request("internal-api.example.com.evil.net", 443));
  EXPECT_FALSE(a.refuse_request("exact.example.org", 80));
  EXPECT_TRUE(a.refuse_request("sub.exact.example.org", 80));
  EXPECT_FALSE(a.refuse_request("api.example.net", 443));
  auto port = a.refuse_request("api.example.net", 80);
  ASSERT_TRUE(port);
  EXPECT_NE(port->find("port 80"), std::string::npos) << *port;
  EXPECT_TRUE(a.refuse_request("", 443));
  EXPECT_TRUE(a.refuse_request("bad host", 443));
}

TEST(Allowlist, IpLiteralsOnlyWhenListed) {
  Allowlist a({"*.example.com", "10.20.0.0/16", "[fd00::1]:8443", "203.0.113.7"});
  EXPECT_TRUE(a.refuse_request("93.184.216.34", 443));
  EXPECT_FALSE(a.refuse_request("10.20.3.4", 443));
  EXPECT_TRUE(a.refuse_request("10.21.3.4", 443));
  EXPECT_FALSE(a.refuse_request("[fd00::1]", 8443));
  EXPECT_TRUE(a.refuse_request("fd00::1", 443));
  EXPECT_FALSE(a.refuse_request("203.0.113.7", 1));
  // An IPv4-mapped IPv6 literal is the IPv4 address.
  EXPECT_FALSE(a.refuse_request("::ffff:10.20.0.1", 80));
  EXPECT_TRUE(a.refuse_request("::ffff:127.0.0.1", 80));
}

TEST(Allowlist, ResolvedAddressesAreChecked) {
  Allowlist a({"*.example.com", "10.20.0.0/16", "127.0.0.1:9000"});
  a.set_host_addresses({ip::make_address("198.51.100.10")});
  EXPECT_FALSE(a.refuse_address(ip::make_address("93.184.216.34"), 443));
  for (const char* bad : {"127.0.0.1", "127.1.2.3", "::1", "169.254.1.1", "fe80::1", "10.0.0.1",
                          "172.16.0.1", "192.168.1.1", "100.64.0.1", "fc00::1", "fd12::1",
                          "0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255",
                          "169.254.169.254", "fd00:ec2::254", "100.100.100.200",
                          "168.63.129.16", "::ffff:127.0.0.1", "64:ff9b::7f00:1",
                          "::ffff:169.254.169.254", "198.51.100.10", "2002:7f00:1::1",
                          "::127.0.0.1"}) {
    EXPECT_TRUE(a.refuse_address(ip::make_address(bad), 443)) << bad;
  }
  // Listed networks pass, on their port only where one is given.
  EXPECT_FALSE(a.refuse_address(ip::make_address("10.20.9.9"), 443));
  EXPECT_FALSE(a.refuse_address(ip::make_address("127.0.0.1"), 9000));
  EXPECT_TRUE(a.refuse_address(ip::make_address("127.0.0.1"), 9001));
  // Metadata addresses stay refused even when a listed network covers them.
  Allowlist wide({"169.254.0.0/16", "0.0.0.0/0"});
  EXPECT_TRUE(wide.refuse_address(ip::make_address("169.254.169.254"), 80));
  EXPECT_FALSE(wide.refuse_address(ip::make_address("169.254.1.1"), 80));
  auto why = a.refuse_address(ip::make_address("169.254.169.254"), 80);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("metadata"), std::string::npos) << *why;
}

TEST(Allowlist, EntriesAreValidated) {
  std::string error;
  for (const char* bad : {"", "*", "*:443", "a.*.com", "exa mple.com", "host:0", "host:99999",
                          "10.0.0.0/33", "[fd00::1", "[fd00::1]x", "-bad.com", "*.", "a..b"}) {
    EXPECT_FALSE(parse_allow_entry(bad, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
  EXPECT_THROW(Allowlist({"ok.example.com", "*"}), std::invalid_argument);
  auto e = parse_allow_entry("*.Example.COM:8443", error);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, AllowEntry::Kind::kSubdomains);
  EXPECT_EQ(e->name, "example.com");
  EXPECT_EQ(e->port, 8443);
}

}  // namespace
}  // namespace airlock::sandbox
