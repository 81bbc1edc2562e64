#include "controlplane/origin_policy.h"

#include <gtest/gtest.h>

namespace airlock::controlplane {
namespace {

TEST(OriginPolicy, LoopbackOriginsOnAnyPortAreAcceptedByDefault) {
  const OriginPolicy p({}, {"localhost", "127.0.0.1", "::1"}, 8443, "https");
  for (const char* o : {"http://127.0.0.1:6274", "http://localhost:3000", "https://LOCALHOST",
                        "http://127.8.9.10:1", "http://[::1]:8080", "http://[::ffff:127.0.0.1]:9"}) {
    EXPECT_TRUE(p.allows(o)) << o;
  }
}

TEST(OriginPolicy, OtherOriginsAreRefusedUnlessListed) {
  const OriginPolicy p({"https://console.example"}, {"localhost", "airlock.corp.example"}, 8443,
                       "https");
  // A page whose name was rebound to airlockd's address sends its own name as the Origin.
  for (const char* o : {"http://evil.example.com", "http://evil.example.com:8443", "null",
                        "http://localhost.evil.example", "http://127.0.0.1.evil.example",
                        "http://10.0.0.1:8443", "file://", "chrome-extension://abc",
                        "http://user@localhost:1", "http://localhost:1/path", "",
                        "https://console.example:444", "http://console.example"}) {
    EXPECT_FALSE(p.allows(o)) << o;
  }
  EXPECT_TRUE(p.allows("https://console.example"));
  EXPECT_TRUE(p.allows("https://Console.Example:443"));
}

TEST(OriginPolicy, AirlockdsOwnOriginsAreItsNamesOnItsPort) {
  const OriginPolicy p({}, {"airlock.corp.example", "10.1.2.3", "fd00::5"}, 8443, "https");
  EXPECT_TRUE(p.allows("https://airlock.corp.example:8443"));
  EXPECT_TRUE(p.allows("https://10.1.2.3:8443"));
  EXPECT_TRUE(p.allows("https://[fd00::5]:8443"));
  EXPECT_FALSE(p.allows("https://airlock.corp.example:9443"));
  EXPECT_FALSE(p.allows("http://airlock.corp.example:8443"));  // not the scheme it serves
  EXPECT_EQ(p.own_origins().size(), 3u);
}

TEST(OriginPolicy, StarAcceptsAny) {
  EXPECT_TRUE(OriginPolicy({"*"}, {}, 1, "http").allows("http://anything.example"));
}

TEST(OriginPolicy, NormalizedFormDropsDefaultPortsAndCase) {
  EXPECT_EQ(normalize_origin("HTTPS://A.Example:443"), "https://a.example");
  EXPECT_EQ(normalize_origin("http://a.example:80"), "http://a.example");
  EXPECT_EQ(normalize_origin("http://a.example:8080"), "http://a.example:8080");
  EXPECT_EQ(normalize_origin("null"), std::nullopt);
  EXPECT_EQ(normalize_origin("ftp://a.example"), std::nullopt);
}

}  // namespace
}  // namespace airlock::controlplane
