#include "common/frame_codec.h"

#include <gtest/gtest.h>

namespace airlock::proto {
namespace {

constexpr uint32_t kMax = 64 * 1024;

FrameView decode_ok(const std::string& bytes) {
  auto f = decode_frame(bytes, kMax);
  EXPECT_TRUE(f.has_value()) << (f ? "" : f.error().message());
  return f.has_value() ? *f : FrameView{};
}

Errc decode_err(const std::string& bytes, uint32_t max = kMax) {
  auto f = decode_frame(bytes, max);
  EXPECT_FALSE(f.has_value());
  return f ? Errc::kOk : static_cast<Errc>(f.error().value());
}

TEST(FrameCodec, HeaderLayoutIsBigEndian) {
  std::string out;
  encode_data(out, 0x01020304, "xy", true);
  ASSERT_EQ(out.size(), kHeaderSize + 2);
  EXPECT_EQ(out[0], 1);                            // version
  EXPECT_EQ(out[1], static_cast<char>(FrameType::kData));
  EXPECT_EQ(out[2], static_cast<char>(kFlagEnd));
  EXPECT_EQ(out[3], 0);
  EXPECT_EQ(out.substr(4, 4), std::string("\x01\x02\x03\x04", 4));
  EXPECT_EQ(out.substr(8, 4), std::string("\0\0\0\x02", 4));
}

TEST(FrameCodec, EveryKindRoundTrips) {
  std::string out;
  encode_frame(out, FrameType::kHello, 0, 0, R"({"kind":"tunnel"})");
  auto f = decode_ok(out);
  EXPECT_EQ(f.header.type, FrameType::kHello);
  EXPECT_EQ(f.payload, R"({"kind":"tunnel"})");

  out.clear();
  encode_frame(out, FrameType::kAccept, 0, 0, "{}");
  EXPECT_EQ(decode_ok(out).header.type, FrameType::kAccept);

  out.clear();
  encode_open(out, 7, R"({"kind":"mcp"})", "first bytes", true);
  f = decode_ok(out);
  EXPECT_EQ(f.header.type, FrameType::kOpen);
  EXPECT_EQ(f.header.stream_id, 7u);
  EXPECT_EQ(f.header.flags, kFlagEnd);
  auto open = parse_open(f.payload);
  ASSERT_TRUE(open);
  EXPECT_EQ(open->meta, R"({"kind":"mcp"})");
  EXPECT_EQ(open->data, "first bytes");

  out.clear();
  encode_data(out, 9, "payload", false);
  f = decode_ok(out);
  EXPECT_EQ(f.header.type, FrameType::kData);
  EXPECT_EQ(f.header.flags, 0);
  EXPECT_EQ(f.payload, "payload");

  out.clear();
  encode_reset(out, 9, ResetCode::kCancel, "caller went away");
  f = decode_ok(out);
  auto reset = parse_reset(f.payload);
  ASSERT_TRUE(reset);
  EXPECT_EQ(reset->code, ResetCode::kCancel);
  EXPECT_EQ(reset->reason, "caller went away");

  out.clear();
  encode_window_update(out, 9, 123456);
  f = decode_ok(out);
  EXPECT_EQ(f.header.type, FrameType::kWindowUpdate);
  EXPECT_EQ(parse_u32(f.payload), 123456u);

  out.clear();
  encode_ping(out, 0x0102030405060708ULL, false);
  f = decode_ok(out);
  EXPECT_EQ(f.header.type, FrameType::kPing);
  EXPECT_EQ(parse_u64(f.payload), 0x0102030405060708ULL);

  out.clear();
  encode_ping(out, 42, true);
  EXPECT_EQ(decode_ok(out).header.type, FrameType::kPong);

  out.clear();
  encode_goaway(out, 11, ResetCode::kShutdown, "draining");
  f = decode_ok(out);
  auto g = parse_goaway(f.payload);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->last_stream_id, 11u);
  EXPECT_EQ(g->code, ResetCode::kShutdown);
  EXPECT_EQ(g->reason, "draining");
}

TEST(FrameCodec, SeveralFramesInOneBuffer) {
  std::string out;
  encode_data(out, 1, "a", false);
  encode_data(out, 3, "bc", true);
  auto f1 = decode_ok(out);
  const std::string rest = out.substr(f1.wire_size());
  auto f2 = decode_ok(rest);
  EXPECT_EQ(f1.payload, "a");
  EXPECT_EQ(f2.payload, "bc");
  EXPECT_EQ(f1.wire_size() + f2.wire_size(), out.size());
}

TEST(FrameCodec, TruncatedHeaderAndPayload) {
  std::string out;
  encode_data(out, 1, "hello", false);
  for (size_t cut = 0; cut < out.size(); ++cut) {
    EXPECT_EQ(decode_err(out.substr(0, cut)), Errc::kTruncatedFrame) << "cut at " << cut;
  }
}

TEST(FrameCodec, BadVersion) {
  std::string out;
  encode_data(out, 1, "x", false);
  out[0] = 2;
  EXPECT_EQ(decode_err(out), Errc::kBadVersion);
}

TEST(FrameCodec, UnknownType) {
  std::string out;
  encode_data(out, 1, "x", false);
  out[1] = 0;
  EXPECT_EQ(decode_err(out), Errc::kUnknownFrameType);
  out[1] = kMaxFrameType + 1;
  EXPECT_EQ(decode_err(out), Errc::kUnknownFrameType);
  out[1] = static_cast<char>(0xff);
  EXPECT_EQ(decode_err(out), Errc::kUnknownFrameType);
}

TEST(FrameCodec, OversizeIsReportedBeforeTheBodyArrives) {
  std::string out;
  encode_data(out, 1, std::string(100, 'x'), false);
  EXPECT_EQ(decode_err(out, 99), Errc::kFrameTooLarge);
  EXPECT_EQ(decode_err(out.substr(0, kHeaderSize), 99), Errc::kFrameTooLarge);
  EXPECT_TRUE(decode_frame(out, 100));
}

TEST(FrameCodec, ReservedByteAndUndefinedFlags) {
  std::string out;
  encode_data(out, 1, "x", false);
  out[3] = 1;
  EXPECT_EQ(decode_err(out), Errc::kReservedBitsSet);
  out[3] = 0;
  out[2] = 0x2;  // undefined flag
  EXPECT_EQ(decode_err(out), Errc::kReservedBitsSet);
  out.clear();
  encode_ping(out, 1, false);
  out[2] = static_cast<char>(kFlagEnd);  // END is meaningless on PING
  EXPECT_EQ(decode_err(out), Errc::kReservedBitsSet);
}

TEST(FrameCodec, StreamIdMisuse) {
  std::string out;
  encode_data(out, 0, "x", false);
  EXPECT_EQ(decode_err(out), Errc::kBadStreamId);
  out.clear();
  encode_frame(out, FrameType::kPing, 0, 5, "12345678");
  EXPECT_EQ(decode_err(out), Errc::kBadStreamId);
  out.clear();
  encode_frame(out, FrameType::kHello, 0, 1, "{}");
  EXPECT_EQ(decode_err(out), Errc::kBadStreamId);
  out.clear();
  encode_window_update(out, 0, 10);
  EXPECT_EQ(decode_err(out), Errc::kBadStreamId);
}

TEST(FrameCodec, FixedPayloadSizes) {
  std::string out;
  encode_frame(out, FrameType::kWindowUpdate, 0, 1, "abc");
  EXPECT_EQ(decode_err(out), Errc::kBadPayload);
  out.clear();
  encode_frame(out, FrameType::kPing, 0, 0, "1234567");
  EXPECT_EQ(decode_err(out), Errc::kBadPayload);
  out.clear();
  encode_frame(out, FrameType::kGoAway, 0, 0, "1234567");
  EXPECT_EQ(decode_err(out), Errc::kBadPayload);
  out.clear();
  encode_frame(out, FrameType::kReset, 0, 1, "12");
  EXPECT_EQ(decode_err(out), Errc::kBadPayload);
  // OPEN whose meta length runs past the payload.
  EXPECT_FALSE(parse_open(std::string("\0\0\0\x09" "abc", 7)));
}

TEST(FrameCodec, ReasonsAreBounded) {
  std::string out;
  encode_reset(out, 1, ResetCode::kInternalError, std::string(5000, 'r'));
  auto f = decode_ok(out);
  EXPECT_EQ(parse_reset(f.payload)->reason.size(), kMaxReasonSize);
}

}  // namespace
}  // namespace airlock::proto
