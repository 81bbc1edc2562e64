#include "common/token.h"

#include <gtest/gtest.h>

#include <set>

namespace airlock {
namespace {

TEST(Token, ShapeAndUniqueness) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto t = mint_token();
    EXPECT_EQ(t.token.size(), 4u + 12u + 1u + 43u) << t.token;
    EXPECT_EQ(t.token.rfind("alk_" + t.id + "_", 0), 0u);
    EXPECT_TRUE(seen.insert(t.token).second);
    auto id = token_id(t.token);
    ASSERT_TRUE(id);
    EXPECT_EQ(*id, t.id);
  }
}

TEST(Token, SaltedHashVerifiesOnlyTheSameToken) {
  auto t = mint_token();
  auto h1 = hash_token(t.token);
  auto h2 = hash_token(t.token);
  EXPECT_NE(h1.salt_hex, h2.salt_hex);  // salted: equal tokens, different digests
  EXPECT_NE(h1.hash_hex, h2.hash_hex);
  EXPECT_EQ(h1.hash_hex.find(t.token), std::string::npos);
  EXPECT_TRUE(verify_token(t.token, h1));
  EXPECT_TRUE(verify_token(t.token, h2));
  std::string other = t.token;
  other.back() = other.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verify_token(other, h1));
  EXPECT_FALSE(verify_token("", h1));
}

TEST(Token, MalformedTokensHaveNoId) {
  EXPECT_FALSE(token_id(""));
  EXPECT_FALSE(token_id("Bearer xyz"));
  auto t = mint_token();
  EXPECT_FALSE(token_id(t.token.substr(1)));
  std::string bad = t.token;
  bad[5] = 'Z';  // not hex
  EXPECT_FALSE(token_id(bad));
  EXPECT_FALSE(token_id(t.token + "x"));
}

TEST(Token, Base64UrlAndHex) {
  EXPECT_EQ(base64url(""), "");
  EXPECT_EQ(base64url("f"), "Zg");
  EXPECT_EQ(base64url("fo"), "Zm8");
  EXPECT_EQ(base64url("foo"), "Zm9v");
  EXPECT_EQ(base64url("\xfb\xff"), "-_8");
  EXPECT_EQ(to_hex("\x01\xab"), "01ab");
}

}  // namespace
}  // namespace airlock
