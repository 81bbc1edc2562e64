// The connector protocol's vocabulary: frame types, flags, reset codes and link limits.
// Value types only; shared by airlockd and every connector. See docs/protocol.md.
#pragma once

#include <cstdint>
#include <string_view>

namespace airlock::proto {

// Bumped on any incompatible change to framing or handshake. Both sides refuse a peer whose
// version differs, with a message naming both.
inline constexpr uint8_t kProtocolVersion = 1;

inline constexpr size_t kHeaderSize = 12;

enum class FrameType : uint8_t {
  kHello = 0x1,         // connector -> airlockd, stream 0, JSON
  kAccept = 0x2,        // airlockd -> connector, stream 0, JSON
  kOpen = 0x3,          // either side opens a stream: u32 meta length, meta JSON, data
  kData = 0x4,          // stream bytes
  kReset = 0x5,         // abort a stream: u32 code, UTF-8 reason
  kWindowUpdate = 0x6,  // u32 credit increment for a stream
  kPing = 0x7,          // stream 0, 8 opaque bytes
  kPong = 0x8,          // stream 0, the ping's 8 bytes echoed
  kGoAway = 0x9,        // stream 0: u32 last accepted stream id, u32 code, UTF-8 reason
};
inline constexpr uint8_t kMaxFrameType = 0x9;

// Flags. END on OPEN or DATA half-closes the sender's side of the stream.
inline constexpr uint8_t kFlagEnd = 0x1;

enum class ResetCode : uint32_t {
  kNoError = 0,
  kProtocolError = 1,
  kInternalError = 2,
  kRefused = 3,          // stream not accepted (limit, draining, unknown kind); safe to retry
  kCancel = 4,           // the opener no longer wants the answer
  kFlowControl = 5,
  kTimeout = 6,
  kUnavailable = 7,      // the target behind the connector cannot be reached
  kUnauthorized = 8,     // handshake: token invalid, revoked or for another resource
  kVersionMismatch = 9,  // handshake: protocol versions differ
  kShutdown = 10,        // goaway: the sender is shutting down or draining
  kRevoked = 11,         // goaway: the connector's token was revoked
};

std::string_view to_string(FrameType t);
std::string_view to_string(ResetCode c);

// What one side is prepared to receive. Each side advertises its own in hello / accept; the
// other side must stay within them when sending.
struct LinkLimits {
  uint32_t max_streams = 1024;               // concurrent streams the peer may open to us
  uint32_t initial_window = 256 * 1024;      // credit per stream, bytes
  uint32_t max_frame_payload = 64 * 1024;    // largest payload we accept in one frame
};

// Bounds enforced regardless of what a peer advertises.
inline constexpr uint32_t kMinFramePayload = 16 * 1024;
inline constexpr uint32_t kMaxFramePayloadCap = 1024 * 1024;
inline constexpr uint32_t kMaxWindow = 0x7fffffff;
inline constexpr uint32_t kMinWindow = 64 * 1024;

}  // namespace airlock::proto
