// libFuzzer target: the frame decoder and typed payload parsers must never crash, read out of
// bounds or loop, whatever the bytes; whatever decodes must re-encode to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/frame_codec.h"

using namespace airlock::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (!rest.empty()) {
    auto f = decode_frame(rest, 64 * 1024);
    if (!f) break;
    std::string again;
    encode_frame(again, f->header.type, f->header.flags, f->header.stream_id, f->payload);
    if (again != rest.substr(0, f->wire_size())) abort();
    switch (f->header.type) {
      case FrameType::kOpen: (void)parse_open(f->payload); break;
      case FrameType::kReset: (void)parse_reset(f->payload); break;
      case FrameType::kGoAway: (void)parse_goaway(f->payload); break;
      default: break;
    }
    rest.remove_prefix(f->wire_size());
  }
  return 0;
}
