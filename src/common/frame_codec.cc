#include "common/frame_codec.h"

#include <algorithm>

namespace airlock::proto {
namespace {

void put_u32(std::string& out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 4);
}

void put_header(std::string& out, FrameType type, uint8_t flags, uint32_t stream_id,
                size_t length) {
  out.push_back(static_cast<char>(kProtocolVersion));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  out.push_back(0);
  put_u32(out, stream_id);
  put_u32(out, static_cast<uint32_t>(length));
}

bool is_link_frame(FrameType t) {
  return t == FrameType::kHello || t == FrameType::kAccept || t == FrameType::kPing ||
         t == FrameType::kPong || t == FrameType::kGoAway;
}

std::string_view cut_reason(std::string_view reason) {
  return reason.substr(0, std::min(reason.size(), kMaxReasonSize));
}

}  // namespace

std::string_view to_string(FrameType t) {
  switch (t) {
    case FrameType::kHello: return "HELLO";
    case FrameType::kAccept: return "ACCEPT";
    case FrameType::kOpen: return "OPEN";
    case FrameType::kData: return "DATA";
    case FrameType::kReset: return "RESET";
    case FrameType::kWindowUpdate: return "WINDOW_UPDATE";
    case FrameType::kPing: return "PING";
    case FrameType::kPong: return "PONG";
    case FrameType::kGoAway: return "GOAWAY";
  }
  return "UNKNOWN";
}

std::string_view to_string(ResetCode c) {
  switch (c) {
    case ResetCode::kNoError: return "no_error";
    case ResetCode::kProtocolError: return "protocol_error";
    case ResetCode::kInternalError: return "internal_error";
    case ResetCode::kRefused: return "refused";
    case ResetCode::kCancel: return "cancel";
    case ResetCode::kFlowControl: return "flow_control";
    case ResetCode::kTimeout: return "timeout";
    case ResetCode::kUnavailable: return "unavailable";
    case ResetCode::kUnauthorized: return "unauthorized";
    case ResetCode::kVersionMismatch: return "version_mismatch";
    case ResetCode::kShutdown: return "shutdown";
    case ResetCode::kRevoked: return "revoked";
  }
  return "unknown";
}

uint32_t parse_u32(std::string_view b) {
  return (uint32_t{static_cast<uint8_t>(b[0])} << 24) |
         (uint32_t{static_cast<uint8_t>(b[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(b[2])} << 8) | uint32_t{static_cast<uint8_t>(b[3])};
}

uint64_t parse_u64(std::string_view b) {
  return (uint64_t{parse_u32(b.substr(0, 4))} << 32) | parse_u32(b.substr(4, 4));
}

Result<FrameView> decode_frame(std::string_view bytes, uint32_t max_payload) {
  if (bytes.size() < kHeaderSize) return Errc::kTruncatedFrame;
  FrameView f;
  f.header.version = static_cast<uint8_t>(bytes[0]);
  if (f.header.version != kProtocolVersion) return Errc::kBadVersion;
  const uint8_t type = static_cast<uint8_t>(bytes[1]);
  if (type == 0 || type > kMaxFrameType) return Errc::kUnknownFrameType;
  f.header.type = static_cast<FrameType>(type);
  f.header.flags = static_cast<uint8_t>(bytes[2]);
  if (bytes[3] != 0) return Errc::kReservedBitsSet;
  const bool may_end = f.header.type == FrameType::kOpen || f.header.type == FrameType::kData;
  if ((f.header.flags & ~(may_end ? kFlagEnd : 0)) != 0) return Errc::kReservedBitsSet;
  f.header.stream_id = parse_u32(bytes.substr(4, 4));
  f.header.length = parse_u32(bytes.substr(8, 4));
  if (is_link_frame(f.header.type) != (f.header.stream_id == 0)) return Errc::kBadStreamId;
  if (f.header.length > max_payload) return Errc::kFrameTooLarge;
  if (bytes.size() - kHeaderSize < f.header.length) return Errc::kTruncatedFrame;
  f.payload = bytes.substr(kHeaderSize, f.header.length);
  switch (f.header.type) {
    case FrameType::kWindowUpdate:
      if (f.payload.size() != 4) return Errc::kBadPayload;
      break;
    case FrameType::kPing:
    case FrameType::kPong:
      if (f.payload.size() != 8) return Errc::kBadPayload;
      break;
    case FrameType::kOpen:
    case FrameType::kReset:
      if (f.payload.size() < 4) return Errc::kBadPayload;
      break;
    case FrameType::kGoAway:
      if (f.payload.size() < 8) return Errc::kBadPayload;
      break;
    default:
      break;
  }
  return f;
}

void encode_frame(std::string& out, FrameType type, uint8_t flags, uint32_t stream_id,
                  std::string_view payload) {
  put_header(out, type, flags, stream_id, payload.size());
  out.append(payload);
}

void encode_open_header(std::string& out, uint32_t stream_id, std::string_view meta,
                        size_t data_size, bool end) {
  put_header(out, FrameType::kOpen, end ? kFlagEnd : 0, stream_id, 4 + meta.size() + data_size);
  put_u32(out, static_cast<uint32_t>(meta.size()));
  out.append(meta);
}

void encode_data_header(std::string& out, uint32_t stream_id, size_t data_size, bool end) {
  put_header(out, FrameType::kData, end ? kFlagEnd : 0, stream_id, data_size);
}

void encode_open(std::string& out, uint32_t stream_id, std::string_view meta,
                 std::string_view data, bool end) {
  encode_open_header(out, stream_id, meta, data.size(), end);
  out.append(data);
}

void encode_data(std::string& out, uint32_t stream_id, std::string_view data, bool end) {
  encode_frame(out, FrameType::kData, end ? kFlagEnd : 0, stream_id, data);
}

void encode_reset(std::string& out, uint32_t stream_id, ResetCode code, std::string_view reason) {
  reason = cut_reason(reason);
  put_header(out, FrameType::kReset, 0, stream_id, 4 + reason.size());
  put_u32(out, static_cast<uint32_t>(code));
  out.append(reason);
}

void encode_window_update(std::string& out, uint32_t stream_id, uint32_t increment) {
  put_header(out, FrameType::kWindowUpdate, 0, stream_id, 4);
  put_u32(out, increment);
}

void encode_ping(std::string& out, uint64_t opaque, bool pong) {
  put_header(out, pong ? FrameType::kPong : FrameType::kPing, 0, 0, 8);
  put_u32(out, static_cast<uint32_t>(opaque >> 32));
  put_u32(out, static_cast<uint32_t>(opaque));
}

void encode_goaway(std::string& out, uint32_t last_stream_id, ResetCode code,
                   std::string_view reason) {
  reason = cut_reason(reason);
  put_header(out, FrameType::kGoAway, 0, 0, 8 + reason.size());
  put_u32(out, last_stream_id);
  put_u32(out, static_cast<uint32_t>(code));
  out.append(reason);
}

Result<OpenPayload> parse_open(std::string_view payload) {
  if (payload.size() < 4) return Errc::kBadPayload;
  const uint32_t meta_len = parse_u32(payload);
  if (meta_len > payload.size() - 4) return Errc::kBadPayload;
  return OpenPayload{payload.substr(4, meta_len), payload.substr(4 + meta_len)};
}

Result<ResetPayload> parse_reset(std::string_view payload) {
  if (payload.size() < 4) return Errc::kBadPayload;
  return ResetPayload{static_cast<ResetCode>(parse_u32(payload)), payload.substr(4)};
}

Result<GoAwayPayload> parse_goaway(std::string_view payload) {
  if (payload.size() < 8) return Errc::kBadPayload;
  return GoAwayPayload{parse_u32(payload), static_cast<ResetCode>(parse_u32(payload.substr(4))),
                       payload.substr(8)};
}

}  // namespace airlock::proto
