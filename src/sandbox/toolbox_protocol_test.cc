#include "sandbox/toolbox_protocol.h"

#include <gtest/gtest.h>

namespace airlock::sandbox::toolbox {
namespace {

std::string body_of(const std::string& frame) { return frame.substr(4); }

TEST(ToolboxProtocol, RequestsAndRepliesRoundTrip) {
  Request q;
  q.id = 42;
  q.op = Op::kRead;
  q.path = "notes.txt";
  q.view_range = {{3, -1}};
  Request back;
  std::string error;
  ASSERT_TRUE(parse_request(body_of(encode(q)), back, error)) << error;
  EXPECT_EQ(back.id, 42u);
  EXPECT_EQ(back.op, Op::kRead);
  EXPECT_EQ(back.path, "notes.txt");
  ASSERT_TRUE(back.view_range);
  EXPECT_EQ(back.view_range->second, -1);

  q = Request{};
  q.id = 7;
  q.op = Op::kExec;
  q.argv = {"/bin/report", "--id", "a b; rm -rf /"};
  q.timeout_ms = 5000;
  ASSERT_TRUE(parse_request(body_of(encode(q)), back, error)) << error;
  EXPECT_EQ(back.argv, q.argv);
  EXPECT_EQ(back.timeout_ms, 5000u);

  Reply r;
  r.id = 7;
  r.text = std::string("out\0put", 7);
  r.exit_code = 3;
  r.is_error = true;
  Reply rb;
  ASSERT_TRUE(parse_reply(body_of(encode(r)), rb, error)) << error;
  EXPECT_EQ(rb.text, r.text);
  EXPECT_EQ(rb.exit_code, 3);
  EXPECT_TRUE(rb.is_error);
  Reply p;
  p.id = 7;
  p.progress = true;
  p.elapsed_ms = 2000;
  ASSERT_TRUE(parse_reply(body_of(encode(p)), rb, error)) << error;
  EXPECT_TRUE(rb.progress);
  EXPECT_EQ(rb.elapsed_ms, 2000u);
}

TEST(ToolboxProtocol, BadRequestsNameTheField) {
  Request q;
  std::string error;
  EXPECT_FALSE(parse_request(R"({"id":1,"op":"format_disk"})", q, error));
  EXPECT_NE(error.find("op 'format_disk' is not an operation"), std::string::npos) << error;
  EXPECT_FALSE(parse_request(R"({"id":1,"op":"bash","timeout_ms":-5})", q, error));
  EXPECT_NE(error.find("timeout_ms"), std::string::npos) << error;
  EXPECT_FALSE(parse_request(R"({"id":1,"op":"exec","argv":[1]})", q, error));
  EXPECT_NE(error.find("argv"), std::string::npos) << error;
  EXPECT_FALSE(parse_request("{", q, error));
}

TEST(ToolboxProtocol, FramesSplitAnywhereAndOversizedFramesStopTheReader) {
  Request a, b;
  a.id = 1;
  a.command = "echo one";
  b.id = 2;
  b.op = Op::kCancel;
  b.target = 1;
  const std::string wire = encode(a) + encode(b);
  for (size_t split = 0; split <= wire.size(); ++split) {
    FrameReader reader;
    ASSERT_TRUE(reader.feed(std::string_view(wire).substr(0, split)));
    ASSERT_TRUE(reader.feed(std::string_view(wire).substr(split)));
    std::vector<std::string> frames;
    while (auto f = reader.next()) frames.push_back(*f);
    ASSERT_EQ(frames.size(), 2u) << "split at " << split;
    Request back;
    std::string error;
    ASSERT_TRUE(parse_request(frames[1], back, error)) << error;
    EXPECT_EQ(back.target, 1u);
  }
  FrameReader reader;
  const std::string huge = {'\x7f', '\x00', '\x00', '\x00'};
  EXPECT_FALSE(reader.feed(huge));
  EXPECT_FALSE(reader.next());
}

}  // namespace
}  // namespace airlock::sandbox::toolbox
