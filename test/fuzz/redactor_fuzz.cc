// libFuzzer target: the streaming redactor with secrets and chunking taken from the input.
// Streaming must equal one-shot redaction, and no encoded form of any secret may remain.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/redactor.h"

using namespace airlock::redact;

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
  // Plant the first secret's forms too, so matches are common.
  for (const auto& form : encoded_forms(secrets[0].value)) text += form + "|";
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
  }
  return 0;
}
