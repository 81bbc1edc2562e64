// libFuzzer target: the streaming redactor with secrets and chunking taken from the input.
// Streaming must equal one-shot redaction, no encoded form of any secret may remain, and no raw
// value may remain in the text once its `%XX` and `\uXXXX` escapes are decoded (by a decoder
// written here apart from the redactor's).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/redactor.h"

using namespace airlock::redact;

namespace {

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(c | 0x20);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// %XX and \u00XX (ASCII) escapes decoded, left to right; anything else kept.
std::string decode_ascii_escapes(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 &&
        hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 3;
    } else if (s[i] == '\\' && i + 5 < s.size() && s[i + 1] == 'u' && s[i + 2] == '0' &&
               s[i + 3] == '0' && hex(s[i + 4]) >= 0 && hex(s[i + 4]) < 8 && hex(s[i + 5]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 4]) * 16 + hex(s[i + 5])));
      i += 6;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Byte 0: how many secrets (1-4); each secret: 8 + (next byte % 24) alphanumeric bytes
  // derived from the input. Byte after: chunk size seed. Rest: the text.
  const int count = 1 + static_cast<uint8_t>(in[0]) % 4;
  size_t pos = 1;
  std::vector<Secret> secrets;
  static const char kAlnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (int i = 0; i < count && pos < in.size(); ++i) {
    const size_t len = 8 + static_cast<uint8_t>(in[pos++]) % 24;
    std::string value;
    for (size_t k = 0; k < len; ++k) {
      value.push_back(kAlnum[static_cast<uint8_t>(in[(pos + k) % in.size()]) % 62]);
    }
    pos += len;
    secrets.push_back({"s" + std::to_string(i), value});
  }
  if (secrets.empty() || pos >= in.size()) return 0;
  const size_t chunk = 1 + static_cast<uint8_t>(in[pos++]) % 64;
  std::string text(in.substr(pos));
  // Plant the first secret's forms too, so matches are common, and a mix of literal, %XX and
  // \u00XX bytes chosen by the input's bits.
  for (const auto& form : encoded_forms(secrets[0].value)) text += form + "|";
  static const char kHex[] = "0123456789abcdef0123456789ABCDEF";
  const uint8_t choice = static_cast<uint8_t>(in[in.size() - 1]);
  for (size_t k = 0; k < secrets[0].value.size(); ++k) {
    const auto c = static_cast<unsigned char>(secrets[0].value[k]);
    const int how = (choice >> (k % 4 * 2)) & 3, up = (choice >> (k % 8)) & 1 ? 16 : 0;
    if (how == 1) {
      text += {'%', kHex[up + (c >> 4)], kHex[up + (c & 15)]};
    } else if (how == 2) {
      text += {'\\', 'u', '0', '0', kHex[up + (c >> 4)], kHex[up + (c & 15)]};
    } else {
      text.push_back(static_cast<char>(c));
    }
  }
  text += "|";
  auto p = Patterns::build(secrets);
  StreamRedactor r(p);
  std::string out;
  for (size_t off = 0; off < text.size(); off += chunk) {
    r.write(std::string_view(text).substr(off, chunk), out);
  }
  r.finish(out);
  if (out != redact(p, text)) abort();
  // No form may survive in the text between replacement markers.
  const auto pieces = outside_markers(out);
  for (const auto& s : secrets) {
    for (const auto& form : encoded_forms(s.value)) {
      for (std::string_view piece : pieces) {
        if (piece.find(form) != std::string::npos) abort();
      }
    }
    for (std::string_view piece : pieces) {
      if (decode_ascii_escapes(piece).find(s.value) != std::string::npos) abort();
    }
  }
  return 0;
}
