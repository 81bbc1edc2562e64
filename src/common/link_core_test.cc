#include "common/link_core.h"

#include <gtest/gtest.h>

#include <map>

#include "common/frame_codec.h"

namespace airlock::proto {
namespace {

using Kind = LinkEvent::Kind;

LinkLimits small_limits() {
  LinkLimits l;
  l.max_streams = 4;
  l.initial_window = kMinWindow;  // 64 KiB
  l.max_frame_payload = kMinFramePayload;  // 16 KiB
  return l;
}

// Two cores joined back to back, with the handshake done.
struct Pair {
  LinkCore cp{Role::kControlPlane, small_limits()};
  LinkCore conn{Role::kConnector, small_limits()};
  std::vector<LinkEvent> cp_events, conn_events;

  Pair() {
    conn.send_hello(R"({"hello":1})");
    pump();
    EXPECT_EQ(cp_events.size(), 1u);
    EXPECT_EQ(cp_events[0].kind, Kind::kHello);
    cp.send_accept("{}", small_limits());
    pump();
    EXPECT_EQ(conn_events.back().kind, Kind::kAccept);
    conn.on_accepted(small_limits());
    cp_events.clear();
    conn_events.clear();
  }

  // Moves all pending output both ways until quiet. Returns messages moved.
  int pump(size_t max_message = 1 << 20) {
    int moved = 0;
    for (bool again = true; again;) {
      again = false;
      if (conn.wants_write()) {
        auto m = conn.take_output(max_message);
        if (!m.empty()) {
          EXPECT_FALSE(cp.receive(m, cp_events)) << cp.last_error();
          ++moved;
          again = true;
        }
      }
      if (cp.wants_write()) {
        auto m = cp.take_output(max_message);
        if (!m.empty()) {
          EXPECT_FALSE(conn.receive(m, conn_events)) << conn.last_error();
          ++moved;
          again = true;
        }
      }
    }
    return moved;
  }

  std::string received_on(const std::vector<LinkEvent>& events, uint32_t id, bool* ended = nullptr) {
    std::string all;
    for (const auto& e : events) {
      if (e.stream_id != id) continue;
      if (e.kind == Kind::kOpen || e.kind == Kind::kData) all += e.data;
      if (ended && e.end) *ended = true;
    }
    return all;
  }
};

std::string frame_bytes(FrameType t, uint8_t flags, uint32_t id, std::string_view payload) {
  std::string out;
  encode_frame(out, t, flags, id, payload);
  return out;
}

TEST(LinkCore, OnlyHelloIsAcceptedBeforeTheHandshake) {
  LinkCore cp(Role::kControlPlane, small_limits());
  std::vector<LinkEvent> ev;
  std::string data;
  encode_data(data, 2, "x", false);
  EXPECT_EQ(cp.receive(data, ev), Errc::kUnexpectedFrame);
  EXPECT_TRUE(cp.failed());
  // The failure queues a GOAWAY that names the problem.
  auto out = cp.take_output(1 << 20);
  auto f = decode_frame(out, kMaxFramePayloadCap);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->header.type, FrameType::kGoAway);
  EXPECT_NE(parse_goaway(f->payload)->reason.find("before the handshake"), std::string::npos);
}

TEST(LinkCore, SecondHelloIsAViolation) {
  Pair p;
  LinkCore fresh(Role::kConnector, small_limits());
  fresh.send_hello("{}");
  EXPECT_EQ(p.cp.receive(fresh.take_output(1 << 20), p.cp_events), Errc::kUnexpectedFrame);
}

TEST(LinkCore, OpenWithDataAndEndNeedsNoExtraRoundTrip) {
  Pair p;
  auto id = p.cp.open_stream(R"({"kind":"echo"})", "request", true);
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, 1u);  // airlockd opens odd ids
  EXPECT_EQ(p.pump(), 1);
  ASSERT_EQ(p.conn_events.size(), 1u);
  EXPECT_EQ(p.conn_events[0].kind, Kind::kOpen);
  EXPECT_EQ(p.conn_events[0].meta, R"({"kind":"echo"})");
  EXPECT_EQ(p.conn_events[0].data, "request");
  EXPECT_TRUE(p.conn_events[0].end);
  // Answer and end: both sides then forget the stream.
  ASSERT_FALSE(p.conn.send(1, "response", true));
  p.pump();
  EXPECT_EQ(p.received_on(p.cp_events, 1), "response");
  EXPECT_EQ(p.cp.stream_count(), 0u);
  EXPECT_EQ(p.conn.stream_count(), 0u);
}

TEST(LinkCore, ConnectorOpensEvenIds) {
  Pair p;
  auto id = p.conn.open_stream("{}", "", false);
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, 2u);
  p.pump();
  EXPECT_EQ(p.cp_events.at(0).kind, Kind::kOpen);
}

TEST(LinkCore, ChunksAreBoundedAndWindowStopsTheSender) {
  Pair p;
  const std::string big(200 * 1024, 'b');
  auto id = p.cp.open_stream("{}", "", false);
  ASSERT_TRUE(id);
  ASSERT_FALSE(p.cp.send(*id, big, true));
  // Without consumption only one window (64 KiB) may cross.
  p.pump();
  size_t got = 0;
  for (const auto& e : p.conn_events) {
    EXPECT_LE(e.data.size(), kMinFramePayload);
    got += e.data.size();
  }
  EXPECT_EQ(got, kMinWindow);
  EXPECT_EQ(p.cp.buffered(*id), big.size() - kMinWindow);
  // Consuming grants credit, and the rest flows.
  size_t total = got;
  for (int rounds = 0; rounds < 100 && p.cp.buffered(*id) > 0; ++rounds) {
    for (auto& e : p.conn_events) p.conn.consumed(e.stream_id, e.data.size());
    p.conn_events.clear();
    p.pump();
    for (const auto& e : p.conn_events) total += e.data.size();
  }
  EXPECT_EQ(total, big.size());
}

TEST(LinkCore, LargeStreamDoesNotDelaySmallOnes) {
  Pair p;
  auto big = p.cp.open_stream("{}", std::string(60 * 1024, 'B'), true);
  auto small = p.cp.open_stream("{}", "tiny", true);
  ASSERT_TRUE(big && small);
  // One message of at most ~one chunk: the small stream must be in the first two chunks.
  std::string first = p.cp.take_output(kMinFramePayload);
  std::string second = p.cp.take_output(kMinFramePayload);
  std::vector<LinkEvent> ev;
  ASSERT_FALSE(p.conn.receive(first, ev));
  ASSERT_FALSE(p.conn.receive(second, ev));
  bool small_seen = false;
  for (const auto& e : ev) small_seen = small_seen || (e.stream_id == *small && e.data == "tiny");
  EXPECT_TRUE(small_seen);
}

TEST(LinkCore, PeerExceedingTheWindowIsAFlowControlViolation) {
  Pair p;
  auto id = p.conn.open_stream("{}", "", false);  // id 2, cp grants 64 KiB
  ASSERT_TRUE(id);
  p.pump();
  std::string msg;
  for (int i = 0; i < 4; ++i) encode_data(msg, *id, std::string(kMinFramePayload, 'x'), false);
  EXPECT_FALSE(p.cp.receive(msg, p.cp_events));  // exactly the window: fine
  EXPECT_EQ(p.cp.receive(frame_bytes(FrameType::kData, 0, *id, "!"), p.cp_events),
            Errc::kFlowControlViolation);
}

TEST(LinkCore, WindowOverflowAndZeroIncrement) {
  Pair p;
  auto id = p.cp.open_stream("{}", "", false);
  p.pump();
  std::string wu;
  encode_window_update(wu, *id, kMaxWindow);
  EXPECT_EQ(p.cp.receive(wu, p.cp_events), Errc::kWindowOverflow);

  Pair q;
  auto id2 = q.cp.open_stream("{}", "", false);
  q.pump();
  std::string zero;
  encode_window_update(zero, *id2, 0);
  EXPECT_EQ(q.cp.receive(zero, q.cp_events), Errc::kBadPayload);
}

TEST(LinkCore, StreamIdReuseWrongParityAndNeverOpened) {
  {
    Pair p;  // the connector opening an odd id (airlockd's parity)
    std::string open;
    encode_open(open, 3, "{}", "", false);
    EXPECT_EQ(p.cp.receive(open, p.cp_events), Errc::kBadStreamId);
  }
  {
    Pair p;  // reuse of an id
    std::string open;
    encode_open(open, 2, "{}", "", false);
    EXPECT_FALSE(p.cp.receive(open, p.cp_events));
    EXPECT_EQ(p.cp.receive(open, p.cp_events), Errc::kBadStreamId);
  }
  {
    Pair p;  // DATA on an id nobody opened
    EXPECT_EQ(p.cp.receive(frame_bytes(FrameType::kData, 0, 8, "x"), p.cp_events),
              Errc::kBadStreamId);
  }
  {
    Pair p;  // DATA on our own id that we never opened
    EXPECT_EQ(p.cp.receive(frame_bytes(FrameType::kData, 0, 5, "x"), p.cp_events),
              Errc::kBadStreamId);
  }
}

TEST(LinkCore, FramesForAClosedStreamAreIgnored) {
  Pair p;
  auto id = p.cp.open_stream("{}", "x", true);
  p.pump();
  p.conn.reset(*id, ResetCode::kCancel, "no");
  p.pump();
  EXPECT_EQ(p.cp.stream_count(), 0u);
  // A late window update for it is not an error.
  std::string wu;
  encode_window_update(wu, *id, 10);
  EXPECT_FALSE(p.cp.receive(wu, p.cp_events));
}

TEST(LinkCore, DataAfterEndIsAViolation) {
  Pair p;
  auto id = p.conn.open_stream("{}", "", false);
  p.pump();
  EXPECT_FALSE(p.cp.receive(frame_bytes(FrameType::kData, kFlagEnd, *id, "a"), p.cp_events));
  EXPECT_EQ(p.cp.receive(frame_bytes(FrameType::kData, 0, *id, "b"), p.cp_events),
            Errc::kUnexpectedFrame);
}

TEST(LinkCore, StreamLimitRefusesTheExtraStreamOnly) {
  Pair p;  // each side accepts 4 concurrent streams
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(p.cp.open_stream("{}", "", false));
  EXPECT_EQ(p.cp.open_stream("{}", "", false).error(), Errc::kStreamLimit);
  p.pump();
  // A peer that ignores the limit gets the extra stream refused, not the link closed.
  std::string open;
  encode_open(open, 9, "{}", "", false);
  EXPECT_FALSE(p.conn.receive(open, p.conn_events)) << p.conn.last_error();
  auto out = p.conn.take_output(1 << 20);
  bool refused = false;
  for (std::string_view rest = out; !rest.empty();) {
    auto f = decode_frame(rest, kMaxFramePayloadCap);
    ASSERT_TRUE(f);
    if (f->header.type == FrameType::kReset && f->header.stream_id == 9) {
      refused = parse_reset(f->payload)->code == ResetCode::kRefused;
    }
    rest.remove_prefix(f->wire_size());
  }
  EXPECT_TRUE(refused);
  EXPECT_FALSE(p.conn.failed());
}

TEST(LinkCore, GoAwayRefusesStreamsThePeerNeverSaw) {
  Pair p;
  auto a = p.cp.open_stream("{}", "", false);
  p.pump();
  p.conn.goaway(ResetCode::kShutdown, "draining");
  auto b = p.cp.open_stream("{}", "", false);  // in flight while the GOAWAY travels
  ASSERT_TRUE(a && b);
  // Deliver the GOAWAY first, before b's OPEN leaves.
  ASSERT_FALSE(p.cp.receive(p.conn.take_output(1 << 20), p.cp_events));
  bool b_refused = false, a_refused = false;
  for (const auto& e : p.cp_events) {
    if (e.kind == Kind::kReset && e.stream_id == *b) b_refused = e.code == ResetCode::kRefused;
    if (e.kind == Kind::kReset && e.stream_id == *a) a_refused = true;
  }
  EXPECT_TRUE(b_refused);
  EXPECT_FALSE(a_refused);
  EXPECT_TRUE(p.cp.goaway_received());
  EXPECT_EQ(p.cp.open_stream("{}", "", false).error(), Errc::kGoingAway);
}

TEST(LinkCore, PingIsAnsweredWithTheSameBytes) {
  Pair p;
  p.cp.ping(0xabcdef);
  p.pump();
  ASSERT_EQ(p.cp_events.size(), 1u);
  EXPECT_EQ(p.cp_events[0].kind, Kind::kPong);
  EXPECT_EQ(p.cp_events[0].opaque, 0xabcdefu);
}

TEST(LinkCore, ResetReachesThePeerWithCodeAndReason) {
  Pair p;
  auto id = p.cp.open_stream("{}", "", false);
  p.pump();
  p.cp.reset(*id, ResetCode::kTimeout, "deadline");
  p.pump();
  ASSERT_FALSE(p.conn_events.empty());
  EXPECT_EQ(p.conn_events.back().kind, Kind::kReset);
  EXPECT_EQ(p.conn_events.back().code, ResetCode::kTimeout);
  EXPECT_EQ(p.conn_events.back().reason, "deadline");
  EXPECT_EQ(p.conn.stream_count(), 0u);
}

TEST(LinkCore, ManyStreamsArriveIntactAndInOrder) {
  LinkLimits wide;
  wide.max_streams = 2000;
  LinkCore cp(Role::kControlPlane, wide), conn(Role::kConnector, wide);
  std::vector<LinkEvent> cev, kev;
  conn.send_hello("{}");
  ASSERT_FALSE(cp.receive(conn.take_output(1 << 20), cev));
  cp.send_accept("{}", wide);
  ASSERT_FALSE(conn.receive(cp.take_output(1 << 20), kev));
  conn.on_accepted(wide);
  kev.clear();
  std::map<uint32_t, std::string> sent;
  for (int i = 0; i < 1000; ++i) {
    std::string body(1 + (i * 7919) % 5000, static_cast<char>('a' + i % 26));
    auto id = cp.open_stream("{}", body, true);
    ASSERT_TRUE(id);
    sent[*id] = body;
  }
  while (cp.wants_write()) ASSERT_FALSE(conn.receive(cp.take_output(256 * 1024), kev));
  std::map<uint32_t, std::string> got;
  for (const auto& e : kev) got[e.stream_id] += e.data;
  EXPECT_EQ(got, sent);
}

}  // namespace
}  // namespace airlock::proto
