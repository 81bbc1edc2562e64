// libFuzzer target: what sandbox-agent reads from a session's toolbox — which runs inside the
// sandbox, so its bytes are untrusted. The frame reader and both parsers must never crash,
// read out of bounds or loop, whatever arrives and however it is split; whatever parses must
// encode to a frame that parses back to the same value, with valid UTF-8 text.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "sandbox/toolbox_protocol.h"

using namespace airlock::sandbox::toolbox;

namespace {

void check(bool ok) {
  if (!ok) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The first byte picks where the stream is split.
  const size_t split = size ? data[0] % (size + 1) : 0;
  FrameReader reader;
  if (reader.feed(bytes.substr(0, split))) (void)reader.feed(bytes.substr(split));
  std::string error;
  for (int n = 0; n < 1000; ++n) {
    auto frame = reader.next();
    if (!frame) break;
    Reply r, again;
    if (parse_reply(*frame, r, error)) {
      const std::string wire = encode(r);
      check(parse_reply(std::string_view(wire).substr(4), again, error));
      check(again.id == r.id && again.progress == r.progress && again.is_error == r.is_error &&
            again.exit_code == r.exit_code && again.text == valid_utf8(r.text));
      check(valid_utf8(again.text) == again.text);
    }
    Request q, back;
    if (parse_request(*frame, q, error)) {
      const std::string wire = encode(q);
      check(parse_request(std::string_view(wire).substr(4), back, error));
      check(back.id == q.id && back.op == q.op);
    }
  }
  return 0;
}
