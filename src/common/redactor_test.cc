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

TEST(Redactor, ByteByByteHoldsBackNoMoreThanTheLongestSpanMinusOne) {
  const std::string value = "a-rather-long-secret-value-0123456789";
  auto p = one(value);
  // The longest span: a decoded-view form with every character a doubly escaped \\uXXXX.
  EXPECT_GE(p->max_span(), Patterns::kMaxEscapeBytes * value.size());
  StreamRedactor r(p);
  std::string out;
  const std::string text(10000, 'z');
  for (char c : text) {
    r.write(std::string_view(&c, 1), out);
    ASSERT_LT(r.held(), p->max_span());
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

// Encoders that escape some bytes and not others: each byte of `value` escaped when `mask`
// says so, by `escape(byte, upper)`, with the hex case drawn per escape.
template <class Escape>
std::string mixed(std::string_view value, std::mt19937& rng, Escape escape, unsigned every = 2) {
  std::string out;
  for (unsigned char c : value) {
    if (rng() % every == 0) {
      out += escape(c, rng() % 2 == 0);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string pct(unsigned char c, bool upper) {
  static const char* kDigits[] = {"0123456789abcdef", "0123456789ABCDEF"};
  return {'%', kDigits[upper][c >> 4], kDigits[upper][c & 15]};
}

std::string uesc(unsigned cp, bool upper, int backslashes = 1) {
  static const char* kDigits[] = {"0123456789abcdef", "0123456789ABCDEF"};
  std::string out(static_cast<size_t>(backslashes), '\\');
  out += 'u';
  for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kDigits[upper][cp >> shift & 15]);
  return out;
}

// Redacted whole, every way it is cut into two writes, and counted once.
void expect_caught_at_every_split(const std::shared_ptr<const Patterns>& p, const std::string& form) {
  const std::string text = "<" + form + ">";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    StreamRedactor r(p);
    std::string out;
    r.write(std::string_view(text).substr(0, cut), out);
    r.write(std::string_view(text).substr(cut), out);
    r.finish(out);
    ASSERT_EQ(out, "<[REDACTED:api]>") << form << " cut at " << cut;
    ASSERT_EQ(r.total(), 1u) << form;
  }
}

TEST(Redactor, PercentEncodingOfEveryByteInEitherCaseIsCaught) {
  const std::string secret = "sk-live-0123456789abcdefXYZ";
  auto p = one(secret);
  std::mt19937 rng(3);
  for (bool upper : {false, true}) {
    std::string all;
    for (unsigned char c : secret) all += pct(c, upper);
    expect_caught_at_every_split(p, all);
  }
}

TEST(Redactor, PercentEncodingInAnyMixOfEscapedAndLiteralBytesAndHexCasesIsCaught) {
  const std::string secret = "sk-live-0123456789abcdefXYZ";
  auto p = one(secret);
  std::mt19937 rng(4);
  for (int trial = 0; trial < 200; ++trial) {
    const std::string form = mixed(secret, rng, pct, 1 + trial % 4);
    const std::string out = redact(p, "?token=" + form + "&x=1");
    EXPECT_EQ(out, "?token=[REDACTED:api]&x=1") << form;
  }
  expect_caught_at_every_split(p, mixed(secret, rng, pct));
}

TEST(Redactor, PercentEncodedBase64IsCaught) {
  // Binary secrets give base64 with '+', '/' and '=' — the characters URL encoders escape.
  std::mt19937 rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    std::string secret(8 + rng() % 32, '\0');
    for (auto& c : secret) c = static_cast<char>(rng());
    auto p = one(secret);
    std::string encoded;
    for (char c : base64(secret, false, true)) {
      if (c == '+' || c == '/' || c == '=') {
        encoded += pct(static_cast<unsigned char>(c), rng() % 2);
      } else {
        encoded.push_back(c);
      }
    }
    const std::string out = redact(p, "q=" + encoded + " ");
    const auto pieces = outside_markers(out);
    ASSERT_EQ(pieces.size(), 2u) << encoded << " -> " << out;
    // Left: at most the one character at each edge that mixes in neighbouring bits, and the
    // padding.
    std::string tail(pieces[1]);
    for (const char* pad : {"%3D", "%3d"}) {
      for (size_t at; (at = tail.find(pad)) != std::string::npos;) tail.erase(at, 3);
    }
    EXPECT_LE(pieces[0].size(), 3u) << out;
    EXPECT_LE(tail.size(), 2u) << out;
  }
}

TEST(Redactor, JsonUnicodeEscapesInAnyMixAndEitherCaseAreCaught) {
  const std::string secret = "sk-live-0123456789abcdefXYZ";
  auto p = one(secret);
  std::mt19937 rng(6);
  for (int backslashes : {1, 2}) {  // JSON, and JSON inside a JSON string
    std::string all;
    for (unsigned char c : secret) all += uesc(c, rng() % 2, backslashes);
    expect_caught_at_every_split(p, all);
    for (int trial = 0; trial < 100; ++trial) {
      const std::string form = mixed(
          secret, rng, [&](unsigned char c, bool upper) { return uesc(c, upper, backslashes); },
          1 + trial % 4);
      EXPECT_EQ(redact(p, "\"" + form + "\""), "\"[REDACTED:api]\"") << form;
    }
  }
  // Percent and \u escapes mixed in one occurrence.
  const std::string both = mixed(secret, rng, [&](unsigned char c, bool upper) {
    return rng() % 2 ? pct(c, upper) : uesc(c, upper);
  });
  expect_caught_at_every_split(p, both);
}

// A URL in a JSON string: some characters percent-encoded, the others JSON-escaped as JSON
// requires (`"` and `\`), or as an encoder chooses (`/`).
TEST(Redactor, PercentEncodingMixedWithJsonEscapesIsCaught) {
  const std::string secret = "tok-\"quoted\"/back\\slash~+=end";
  auto p = one(secret);
  std::mt19937 rng(8);
  for (int trial = 0; trial < 100; ++trial) {
    std::string form;
    for (unsigned char c : secret) {
      const unsigned how = rng() % 3;
      if (how == 0) {
        form += pct(c, rng() % 2);
      } else if (c == '"' || c == '\\' || (c == '/' && how == 2)) {
        form += {'\\', static_cast<char>(c)};
      } else {
        form.push_back(static_cast<char>(c));
      }
    }
    EXPECT_EQ(redact(p, "{\"url\":\"" + form + "\"}"), "{\"url\":\"[REDACTED:api]\"}") << form;
    if (trial < 5) expect_caught_at_every_split(p, form);
  }
}

// Text dense with backslashes and percent signs, cut anywhere: a stream decodes exactly as the
// whole text does (a run of backslashes pairs up from its start, whatever the chunking).
TEST(Redactor, StreamingOverEscapeDenseTextEqualsOneShot) {
  std::mt19937 rng(9);
  const std::string secret = "Zx9-\\q/\"w%k";
  auto p = one(secret);
  const std::string alphabet = "\\\\\\%%u0123456789abcdefABCDEF\"/Zxq9-wk";
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    for (int k = 0; k < 12; ++k) {
      for (int i = 0, n = static_cast<int>(rng() % 40); i < n; ++i) {
        text.push_back(alphabet[rng() % alphabet.size()]);
      }
      for (unsigned char c : secret) {
        switch (rng() % 4) {
          case 0: text += pct(c, rng() % 2); break;
          case 1: text += uesc(c, rng() % 2, 1 + static_cast<int>(rng() % 2)); break;
          case 2:
            if (c == '"' || c == '\\') {
              text += {'\\', static_cast<char>(c)};
              break;
            }
            [[fallthrough]];
          default: text.push_back(static_cast<char>(c));
        }
      }
    }
    const std::string expected = redact(p, text);
    for (int cuts = 0; cuts < 20; ++cuts) {
      StreamRedactor r(p);
      std::string out;
      for (size_t pos = 0; pos < text.size();) {
        const size_t len = std::min(text.size() - pos, size_t(1 + rng() % 40));
        r.write(std::string_view(text).substr(pos, len), out);
        pos += len;
      }
      r.finish(out);
      ASSERT_EQ(out, expected) << "trial " << trial;
    }
  }
}

TEST(Redactor, JsonUnicodeEscapesOfNonAsciiSecretsIncludingSurrogatePairsAreCaught) {
  // "é" is U+00E9 (two UTF-8 bytes), "€" U+20AC (three), "😀" U+1F600 (four: a surrogate pair).
  const std::string secret = "pass-\xC3\xA9-\xE2\x82\xAC-\xF0\x9F\x98\x80-word";
  auto p = one(secret);
  for (bool upper : {false, true}) {
    const std::string form = "pass-" + uesc(0xE9, upper) + "-" + uesc(0x20AC, upper) + "-" +
                             uesc(0xD83D, upper) + uesc(0xDE00, upper) + "-word";
    expect_caught_at_every_split(p, form);
  }
  // A lone surrogate decodes to nothing agreed on: not an escape, so the text stays.
  const std::string lone = "pass-" + uesc(0xD83D, false) + "-word";
  EXPECT_EQ(redact(p, lone), lone);
}

TEST(Redactor, EscapesThatSpellNoSecretLeaveTheTextAlone) {
  const std::string secret = "sk-live-0123456789abcdefXYZ";
  auto p = one(secret);
  for (const std::string& text :
       {std::string("a%20b%2Fc %73k-live-0123 \\u0073k-live \\\\u0073 %zz %4 \\u12 \\uZZZZ"),
        std::string("%%%%\\\\\\\\uuuu"), std::string("sk-live-0123456789abcdefXY%5")}) {
    EXPECT_EQ(redact(p, text), text);
  }
  EXPECT_EQ(redact(p, "sk-live-0123456789abcdefXY%5A%"), "[REDACTED:api]%");
}

// What the decoded view does not undo, each said in docs/security.md: escapes of escapes
// (`%25XX`, `%5CuXXXX`), JSON nested three deep (`\\\\\\\\uXXXX`) and the short JSON escapes
// mixed with literal characters (every one of those is invalid JSON or an escape of a byte a
// JSON encoder must escape anyway — the standard forms are direct patterns).
TEST(Redactor, EscapesOfEscapesAreNotDecoded) {
  const std::string secret = "sk-live-0123456789abcdefXYZ";
  auto p = one(secret);
  std::string twice, percent_of_json, three_deep;
  for (unsigned char c : secret) {
    twice += "%25" + pct(c, true).substr(1);
    percent_of_json += "%5C" + uesc(c, false).substr(1);
    three_deep += uesc(c, false, 4);
  }
  for (const std::string& form : {twice, percent_of_json, three_deep}) {
    EXPECT_EQ(redact(p, form), form);
  }
}

}  // namespace
}  // namespace airlock::redact
