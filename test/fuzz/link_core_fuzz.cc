// libFuzzer target: a LinkCore on either side of the handshake fed arbitrary messages, with
// the application reacting (consuming, sending, resetting, opening). It must never crash, and
// whatever it emits must decode.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/frame_codec.h"
#include "common/link_core.h"

using namespace airlock::proto;

namespace {

void check_output(LinkCore& core) {
  std::string out = core.take_output(1 << 20);
  std::string_view rest = out;
  while (!rest.empty()) {
    auto f = decode_frame(rest, kMaxFramePayloadCap);
    if (!f) abort();  // we must only ever emit well-formed frames
    rest.remove_prefix(f->wire_size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const Role role = (data[0] & 1) ? Role::kControlPlane : Role::kConnector;
  const bool established = data[0] & 2;
  LinkLimits limits;
  limits.max_streams = 8;
  limits.initial_window = kMinWindow;
  limits.max_frame_payload = kMinFramePayload;
  LinkCore core(role, limits);
  if (established) {
    if (role == Role::kControlPlane) core.send_accept("{}", limits); else core.on_accepted(limits);
  }
  std::vector<LinkEvent> events;
  // The rest is a sequence of messages, each prefixed by a one-byte length (times 16).
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  while (!rest.empty() && !core.failed()) {
    const size_t len = std::min(rest.size() - 1, size_t(static_cast<uint8_t>(rest[0])) * 16);
    std::string_view msg = rest.substr(1, len);
    rest.remove_prefix(1 + len);
    events.clear();
    (void)core.receive(msg, events);
    for (const auto& e : events) {
      if (e.kind == LinkEvent::Kind::kOpen || e.kind == LinkEvent::Kind::kData) {
        core.consumed(e.stream_id, e.data.size());
        (void)core.send(e.stream_id, e.data, e.end);
      }
      if (e.kind == LinkEvent::Kind::kOpen && (e.stream_id % 3) == 0) {
        core.reset(e.stream_id, ResetCode::kCancel, "fuzz");
      }
    }
    if (core.established() && (msg.size() & 1)) (void)core.open_stream("{}", msg, msg.size() & 2);
    check_output(core);
  }
  check_output(core);
  return 0;
}
