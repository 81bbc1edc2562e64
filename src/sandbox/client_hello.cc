#include "sandbox/client_hello.h"

#include <cstdint>

namespace airlock::sandbox {
namespace {

struct Reader {
  std::string_view data;
  size_t pos = 0;
  bool ok = true;
  uint32_t take(size_t n) {
    if (pos + n > data.size()) {
      ok = false;
      return 0;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(data[pos + i]);
    pos += n;
    return v;
  }
  std::string_view bytes(size_t n) {
    if (pos + n > data.size()) {
      ok = false;
      return {};
    }
    auto out = data.substr(pos, n);
    pos += n;
    return out;
  }
  size_t left() const { return data.size() - pos; }
};

HelloParse fail(HelloParse::State s, std::string why) {
  HelloParse r;
  r.state = s;
  r.error = std::move(why);
  return r;
}

}  // namespace

HelloParse parse_client_hello(std::string_view bytes) {
  // Reassemble the handshake message from consecutive handshake records.
  std::string handshake;
  size_t pos = 0;
  size_t need = 0;  // total handshake length once its header is known
  while (true) {
    if (bytes.size() - pos < 5) {
      if (pos == 0 && !bytes.empty() && static_cast<uint8_t>(bytes[0]) != 0x16) {
        return fail(HelloParse::State::kNotTls, "the first byte is not a TLS handshake record");
      }
      return {};
    }
    const auto type = static_cast<uint8_t>(bytes[pos]);
    const auto major = static_cast<uint8_t>(bytes[pos + 1]);
    const size_t len = (static_cast<uint8_t>(bytes[pos + 3]) << 8) | static_cast<uint8_t>(bytes[pos + 4]);
    if (type != 0x16 || major != 3) {
      return fail(pos == 0 ? HelloParse::State::kNotTls : HelloParse::State::kMalformed,
                  "not a TLS handshake record");
    }
    if (len == 0 || len > 16384 + 2048) {
      return fail(HelloParse::State::kMalformed, "TLS record length out of range");
    }
    if (bytes.size() - pos - 5 < len) return {};
    handshake.append(bytes.substr(pos + 5, len));
    pos += 5 + len;
    if (need == 0 && handshake.size() >= 4) {
      if (static_cast<uint8_t>(handshake[0]) != 0x01) {
        return fail(HelloParse::State::kMalformed, "the first handshake message is not a ClientHello");
      }
      need = 4 + ((static_cast<uint8_t>(handshake[1]) << 16) |
                  (static_cast<uint8_t>(handshake[2]) << 8) | static_cast<uint8_t>(handshake[3]));
      if (need > kMaxClientHello) return fail(HelloParse::State::kMalformed, "ClientHello too large");
    }
    if (need != 0 && handshake.size() >= need) break;
    if (handshake.size() > kMaxClientHello) {
      return fail(HelloParse::State::kMalformed, "ClientHello too large");
    }
  }
  Reader r{std::string_view(handshake).substr(4, need - 4)};
  r.take(2);      // client_version
  r.bytes(32);    // random
  r.bytes(r.take(1));  // session_id
  const uint32_t suites = r.take(2);
  if (suites == 0 || suites % 2) return fail(HelloParse::State::kMalformed, "bad cipher suites");
  r.bytes(suites);
  r.bytes(r.take(1));  // compression methods
  if (!r.ok) return fail(HelloParse::State::kMalformed, "ClientHello truncated");
  HelloParse result;
  result.state = HelloParse::State::kNoSni;
  if (r.left() == 0) return result;  // no extensions at all
  Reader ext{r.bytes(r.take(2))};
  if (!r.ok) return fail(HelloParse::State::kMalformed, "extensions truncated");
  bool seen = false;
  while (ext.left() > 0) {
    const uint32_t type = ext.take(2);
    Reader body{ext.bytes(ext.take(2))};
    if (!ext.ok) return fail(HelloParse::State::kMalformed, "extension truncated");
    if (type != 0) continue;
    if (seen) return fail(HelloParse::State::kMalformed, "two server_name extensions");
    seen = true;
    Reader list{body.bytes(body.take(2))};
    if (!body.ok || body.left() != 0) return fail(HelloParse::State::kMalformed, "bad server_name list");
    size_t names = 0;
    while (list.left() > 0) {
      const uint32_t name_type = list.take(1);
      const auto name = list.bytes(list.take(2));
      if (!list.ok) return fail(HelloParse::State::kMalformed, "bad server_name entry");
      if (name_type != 0) continue;
      // One host name only: two would leave the upstream to choose.
      if (++names > 1) return fail(HelloParse::State::kMalformed, "several host names in SNI");
      if (name.empty() || name.find('\0') != std::string_view::npos) {
        return fail(HelloParse::State::kMalformed, "empty or NUL-bearing SNI host name");
      }
      result.state = HelloParse::State::kSni;
      result.server_name = std::string(name);
    }
  }
  return result;
}

}  // namespace airlock::sandbox
