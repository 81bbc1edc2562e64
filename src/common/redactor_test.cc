#include "common/redactor.h"

#include <gtest/gtest.h>

#include <tuple>

#include <set>

#include <random>

#include "common/encoding.h"

namespace airlock::redact {
namespace {

std::shared_ptr<const Patterns> one(const std::string& value, const std::string& name = "api") {
  return Patterns::build({{name, value}});
}

// Every form must be gone from `out`, looking at the text between replacement markers (a
// marker's own letters are not a leak).
void expect_clean(const std::string& out, const std::vector<Secret>& secrets) {
  for (const auto& s : secrets) {
    for (const auto& form : encoded_forms(s.value)) {
      for (std::string_view piece : outside_markers(out)) {
        EXPECT_EQ(piece.find(form), std::string::npos) << "form of " << s.name << " left: " << form;
      }
    }
  }
}

TEST(Redactor, OutsideMarkersSplitsAroundReplacements) {
  const auto pieces = outside_markers("a[REDACTED:x]b[REDACTED:y][REDACTED:z]c[REDACTED:");
  ASSERT_EQ(pieces.size(), 4u);
  EXPECT_EQ(pieces[0], "a");
  EXPECT_EQ(pieces[1], "b");
  EXPECT_EQ(pieces[2], "");
  EXPECT_EQ(pieces[3], "c[REDACTED:");
}

TEST(Redactor, RawHexPercentAndJsonForms) {
  const std::string secret = "s3cr3t/\"va lue\\\n";
  auto p = one(secret);
  for (const std::string& form :
       {secret, to_hex(secret), to_hex(secret, true), std::string("s3cr3t%2F%22va%20lue%5C%0A"),
        std::string("s3cr3t%2f%22va%20lue%5c%0a"), std::string("s3cr3t/\\\"va lue\\\\\\n"),
        std::string("s3cr3t\\/\\\"va lue\\\\\\n")}) {
    std::vector<uint64_t> counts;
    const std::string out = redact(p, "before " + form + " after", &counts);
    EXPECT_EQ(out, "before [REDACTED:api] after") << form;
    EXPECT_EQ(counts[0], 1u);
  }
}

TEST(Redactor, Base64AndBase64UrlAtEveryOffsetPaddedOrNot) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 50; ++trial) {
    std::string secret(8 + rng() % 40, '\0');
    for (auto& c : secret) c = static_cast<char>(rng());  // binary secrets: +, / and - _ appear
    auto p = one(secret);
    for (int prefix = 0; prefix < 6; ++prefix) {
      for (int suffix = 0; suffix < 4; ++suffix) {
        const std::string blob = std::string(prefix, 'P') + secret + std::string(suffix, 'S');
        for (bool url : {false, true}) {
          for (bool pad : {false, true}) {
            const std::string encoded = base64(blob, url, pad);
            const std::string out = redact(p, "x=" + encoded + ";");
            EXPECT_NE(out.find("[REDACTED:api]"), std::string::npos) << encoded;
            expect_clean(out, {{"api", secret}});
          }
        }
      }
    }
  }
}

TEST(Redactor, NothingToRedactPassesThroughUnchanged) {
  auto p = one("correct horse battery");
  const std::string text = "no secrets here, just text with horse and battery";
  EXPECT_EQ(redact(p, text), text);
  auto none = Patterns::build({});
  EXPECT_EQ(redact(none, text), text);
}

TEST(Redactor, ShortOrUnnamedSecretsAreRefusedAndANameMayHoldEarlierValues) {
  EXPECT_THROW(one("1234567"), std::invalid_argument);
  EXPECT_NO_THROW(one("12345678"));
  // A rotated secret keeps its earlier value in the set, under the same name.
  auto rotated = Patterns::build({{"a", "aaaaaaaaaa"}, {"a", "bbbbbbbbbb"}});
  EXPECT_EQ(redact(rotated, "aaaaaaaaaa bbbbbbbbbb"), "[REDACTED:a] [REDACTED:a]");
  EXPECT_THROW(Patterns::build({{"", "aaaaaaaaaa"}}), std::invalid_argument);
  try {
    one("short");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("secret 'api' is 5 bytes"), std::string::npos);
  }
}

TEST(Redactor, OverlappingSecretsAreReplacedAsOneRegion) {
  // "abcdefgh12" and "gh12345678" overlap in "gh12": neither may leak a tail.
  auto p = Patterns::build({{"a", "abcdefgh12"}, {"b", "gh12345678"}});
  const std::string out = redact(p, "<abcdefgh12345678>");
  EXPECT_EQ(out, "<[REDACTED:a][REDACTED:b]>");
}

TEST(Redactor, StreamingOverEverySplitEqualsOneShot) {
  const std::vector<Secret> secrets{{"one", "first-secret-value"}, {"two", "Zm9vYmFyYmF6cXV4"}};
  auto p = Patterns::build(secrets);
  const std::string text = "a first-secret-value b " + to_hex("Zm9vYmFyYmF6cXV4") + " c " +
                           base64("xx" + std::string("first-secret-value") + "y", true, false) +
                           " end";
  const std::string expected = redact(p, text);
  expect_clean(expected, secrets);
  for (size_t cut1 = 0; cut1 <= text.size(); ++cut1) {
    for (size_t cut2 = cut1; cut2 <= text.size(); cut2 += 7) {
      StreamRedactor r(p);
      std::string out;
      r.write(std::string_view(text).substr(0, cut1), out);
      r.write(std::string_view(text).substr(cut1, cut2 - cut1), out);
      r.write(std::string_view(text).substr(cut2), out);
      r.finish(out);
      ASSERT_EQ(out, expected) << "cuts " << cut1 << ", " << cut2;
      EXPECT_EQ(r.total(), 3u);
    }
  }
}

TEST(Redactor, ByteByByteHoldsBackNoMoreThanTheLongestPatternMinusOne) {
  auto p = one("a-rather-long-secret-value-0123456789");
  StreamRedactor r(p);
  std::string out;
  const std::string text(10000, 'z');
  for (char c : text) {
    r.write(std::string_view(&c, 1), out);
    ASSERT_LT(r.held(), p->max_length());
  }
  r.finish(out);
  EXPECT_EQ(out, text);
}

// The sampled scan against a plain search for every form of every secret: same occurrences,
// for secrets of every length from the minimum up (so every probe stride), planted at every
// offset relative to the probes, in text made of the same alphabet (so grams collide often).
TEST(Redactor, SampledScanFindsExactlyWhatAPlainSearchFinds) {
  std::mt19937 rng(11);
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=%";
  auto random_text = [&](size_t n) {
    std::string t(n, ' ');
    for (auto& c : t) c = alphabet[rng() % alphabet.size()];
    return t;
  };
  for (size_t len = kMinSecretSize; len <= 40; ++len) {
    std::vector<Secret> secrets;
    for (int i = 0; i < 3; ++i) secrets.push_back({"s" + std::to_string(i), random_text(len)});
    auto p = Patterns::build(secrets);
    std::string text = random_text(3000);
    for (int k = 0; k < 40; ++k) {
      const auto forms = encoded_forms(secrets[rng() % secrets.size()].value);
      const std::string& f = forms[rng() % forms.size()];
      text.replace(rng() % (text.size() - f.size()), f.size(), f);
    }
    std::set<std::tuple<size_t, size_t, uint32_t>> expected, found;
    for (uint32_t si = 0; si < secrets.size(); ++si) {
      for (const auto& f : encoded_forms(secrets[si].value)) {
        for (size_t at = text.find(f); at != std::string::npos; at = text.find(f, at + 1)) {
          expected.insert({at, at + f.size(), si});
        }
      }
    }
    std::vector<Patterns::Match> matches;
    p->find_all(text, matches);
    for (const auto& m : matches) found.insert({m.start, m.end, m.secret});
    EXPECT_EQ(found, expected) << "secret length " << len;
    EXPECT_EQ(matches.size(), found.size()) << "an occurrence was reported twice";
  }
}

TEST(Redactor, PropertyRandomSecretsRandomOffsetsRandomChunks) {
  std::mt19937_64 rng(42);
  auto random_string = [&](size_t n, bool printable) {
    std::string s(n, '\0');
    for (auto& c : s) c = printable ? static_cast<char>(33 + rng() % 94) : static_cast<char>(rng());
    return s;
  };
  for (int trial = 0; trial < 30; ++trial) {
    std::vector<Secret> secrets;
    const int n = 1 + static_cast<int>(rng() % 100);
    for (int i = 0; i < n; ++i) {
      secrets.push_back({"s" + std::to_string(i), random_string(8 + rng() % 56, rng() % 2)});
    }
    auto p = Patterns::build(secrets);
    // Text: random filler with encoded secrets planted at random places.
    std::string text;
    uint64_t planted = 0;
    for (int k = 0; k < 40; ++k) {
      text += random_string(rng() % 200, true);
      const auto& s = secrets[rng() % secrets.size()];
      const auto forms = encoded_forms(s.value);
      if (rng() % 3 == 0) {
        // Base64 of the secret inside a larger blob, as a JSON value would carry it.
        text += base64(random_string(rng() % 3, false) + s.value + random_string(rng() % 3, false),
                       rng() % 2, rng() % 2);
      } else {
        text += forms[rng() % forms.size()];
      }
      ++planted;
    }
    StreamRedactor r(p);
    std::string out;
    for (size_t pos = 0; pos < text.size();) {
      const size_t len = std::min(text.size() - pos, size_t(1 + rng() % 300));
      r.write(std::string_view(text).substr(pos, len), out);
      pos += len;
    }
    r.finish(out);
    expect_clean(out, secrets);
    EXPECT_GE(r.total(), planted);
    EXPECT_EQ(out, redact(p, text));
  }
}

}  // namespace
}  // namespace airlock::redact
