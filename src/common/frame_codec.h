// Sans-IO encoder and decoder for connector frames: plain functions over bytes, no sockets,
// no clocks, no allocation on decode. Frame layout and semantics: docs/protocol.md.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "airlock/error.h"
#include "airlock/protocol.h"

namespace airlock::proto {

struct FrameHeader {
  uint8_t version = kProtocolVersion;
  FrameType type = FrameType::kData;
  uint8_t flags = 0;
  uint32_t stream_id = 0;
  uint32_t length = 0;
};

// A decoded frame; `payload` points into the caller's buffer.
struct FrameView {
  FrameHeader header;
  std::string_view payload;
  size_t wire_size() const { return kHeaderSize + payload.size(); }
};

// Decodes the first frame of `bytes`. Checks version, type, reserved bits, flags, stream-id
// rules per type, fixed payload sizes and `max_payload`. kTruncatedFrame when `bytes` holds
// less than a whole frame (a WebSocket message must hold whole frames only).
Result<FrameView> decode_frame(std::string_view bytes, uint32_t max_payload);

// Encoders append one whole frame to `out`.
void encode_frame(std::string& out, FrameType type, uint8_t flags, uint32_t stream_id,
                  std::string_view payload);
void encode_open(std::string& out, uint32_t stream_id, std::string_view meta,
                 std::string_view data, bool end);
void encode_data(std::string& out, uint32_t stream_id, std::string_view data, bool end);
// Header-only variants: the caller appends exactly `data_size` bytes of data afterwards
// (lets a sender gather a frame's data from several buffers without an extra copy).
void encode_open_header(std::string& out, uint32_t stream_id, std::string_view meta,
                        size_t data_size, bool end);
void encode_data_header(std::string& out, uint32_t stream_id, size_t data_size, bool end);
void encode_reset(std::string& out, uint32_t stream_id, ResetCode code, std::string_view reason);
void encode_window_update(std::string& out, uint32_t stream_id, uint32_t increment);
void encode_ping(std::string& out, uint64_t opaque, bool pong);
void encode_goaway(std::string& out, uint32_t last_stream_id, ResetCode code,
                   std::string_view reason);

// Payload parsers for the typed frames. They validate lengths and never read past `payload`.
struct OpenPayload {
  std::string_view meta;
  std::string_view data;
};
Result<OpenPayload> parse_open(std::string_view payload);

struct ResetPayload {
  ResetCode code;
  std::string_view reason;
};
Result<ResetPayload> parse_reset(std::string_view payload);

struct GoAwayPayload {
  uint32_t last_stream_id;
  ResetCode code;
  std::string_view reason;
};
Result<GoAwayPayload> parse_goaway(std::string_view payload);

uint32_t parse_u32(std::string_view four_bytes);
uint64_t parse_u64(std::string_view eight_bytes);

// Longest reason string carried by RESET and GOAWAY; longer ones are cut.
inline constexpr size_t kMaxReasonSize = 1024;

}  // namespace airlock::proto
