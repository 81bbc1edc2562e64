#include "common/link_core.h"

#include <algorithm>

#include "common/frame_codec.h"

namespace airlock::proto {

using boost::system::error_code;

LinkCore::LinkCore(Role role, LinkLimits local)
    : role_(role), local_(local), next_id_(role == Role::kControlPlane ? 1 : 2) {
  // Until the handshake says otherwise, assume the smallest limits any peer must accept.
  peer_.max_streams = 0;
  peer_.initial_window = kMinWindow;
  peer_.max_frame_payload = kMinFramePayload;
}

error_code LinkCore::fail(error_code ec, std::string reason) {
  failed_ = true;
  last_error_ = std::move(reason);
  control_.clear();
  ready_.clear();
  encode_goaway(control_, last_peer_id_, ResetCode::kProtocolError, last_error_);
  goaway_sent_ = true;
  return ec;
}

error_code LinkCore::receive(std::string_view message, std::vector<LinkEvent>& events) {
  if (failed_) return Errc::kUnexpectedFrame;
  if (message.empty()) return fail(Errc::kTruncatedFrame, "empty message");
  while (!message.empty()) {
    auto frame = decode_frame(message, local_.max_frame_payload);
    if (!frame) {
      std::string why = "frame " + std::to_string(frames_received_ + 1) + ": " +
                        frame.error().message();
      if (frame.error() == Errc::kBadVersion) {
        why += " (peer frame version " + std::to_string(static_cast<uint8_t>(message[0])) +
               ", this side speaks " + std::to_string(kProtocolVersion) + ")";
      } else if (frame.error() == Errc::kFrameTooLarge && message.size() >= kHeaderSize) {
        why += " (" + std::to_string(parse_u32(message.substr(8, 4))) + " > " +
               std::to_string(local_.max_frame_payload) + " bytes)";
      }
      return fail(frame.error(), std::move(why));
    }
    message.remove_prefix(frame->wire_size());
    ++frames_received_;
    if (auto ec = handle(*frame, events)) return ec;
  }
  return {};
}

error_code LinkCore::check_unknown_id(uint32_t id) const {
  // A frame for a stream we do not hold is fine when the stream existed and has closed
  // (frames cross in flight); it is a violation when the id was never opened.
  if (is_peer_id(id) ? id > last_peer_id_ : id >= next_id_) return Errc::kBadStreamId;
  return {};
}

error_code LinkCore::handle(const FrameView& f, std::vector<LinkEvent>& events) {
  const auto type = f.header.type;
  const uint32_t id = f.header.stream_id;
  auto describe = [&](std::string_view what) {
    return std::string(to_string(type)) + " on stream " + std::to_string(id) + ": " +
           std::string(what);
  };

  if (!established_) {
    const bool ok = role_ == Role::kControlPlane ? (type == FrameType::kHello && !hello_seen_)
                                                 : (type == FrameType::kAccept ||
                                                    type == FrameType::kGoAway);
    if (!ok) return fail(Errc::kUnexpectedFrame, describe("not allowed before the handshake"));
  } else if (type == FrameType::kHello || type == FrameType::kAccept) {
    return fail(Errc::kUnexpectedFrame, describe("handshake already done"));
  }

  switch (type) {
    case FrameType::kHello:
      hello_seen_ = true;
      events.push_back({.kind = LinkEvent::Kind::kHello, .data = std::string(f.payload)});
      return {};
    case FrameType::kAccept:
      events.push_back({.kind = LinkEvent::Kind::kAccept, .data = std::string(f.payload)});
      return {};
    case FrameType::kPing:
      encode_ping(control_, parse_u64(f.payload), /*pong=*/true);
      return {};
    case FrameType::kPong:
      events.push_back({.kind = LinkEvent::Kind::kPong, .opaque = parse_u64(f.payload)});
      return {};
    case FrameType::kGoAway: {
      auto g = parse_goaway(f.payload);
      if (!g) return fail(g.error(), describe("bad payload"));
      goaway_received_ = true;
      events.push_back({.kind = LinkEvent::Kind::kGoAway,
                        .code = g->code,
                        .reason = std::string(g->reason),
                        .last_stream_id = g->last_stream_id});
      // Streams we opened past the peer's last accepted id were never processed: tell the
      // application they were refused, so it may retry them elsewhere.
      std::vector<uint32_t> refused;
      for (auto& [sid, s] : streams_) {
        if (!is_peer_id(sid) && sid > g->last_stream_id) refused.push_back(sid);
      }
      std::sort(refused.begin(), refused.end());
      for (uint32_t sid : refused) {
        erase(sid);
        events.push_back({.kind = LinkEvent::Kind::kReset,
                          .stream_id = sid,
                          .code = ResetCode::kRefused,
                          .reason = "peer is going away"});
      }
      return {};
    }
    case FrameType::kOpen: {
      if (!is_peer_id(id) || id <= last_peer_id_) {
        return fail(Errc::kBadStreamId, describe("id reused, out of order or of the wrong parity"));
      }
      auto open = parse_open(f.payload);
      if (!open) return fail(open.error(), describe("meta length exceeds the payload"));
      last_peer_id_ = id;
      if (open->data.size() > local_.initial_window) {
        return fail(Errc::kFlowControlViolation, describe("more data than the initial window"));
      }
      if (goaway_sent_ || peer_opened_ >= local_.max_streams) {
        encode_reset(control_, id, ResetCode::kRefused,
                     goaway_sent_ ? "link is draining" : "concurrent stream limit reached");
        return {};
      }
      Stream& s = streams_[id];
      s.peer_opened = true;
      ++peer_opened_;
      s.send_window = peer_.initial_window;
      s.recv_window = local_.initial_window - static_cast<uint32_t>(open->data.size());
      s.remote_closed = (f.header.flags & kFlagEnd) != 0;
      events.push_back({.kind = LinkEvent::Kind::kOpen,
                        .stream_id = id,
                        .meta = std::string(open->meta),
                        .data = std::string(open->data),
                        .end = s.remote_closed});
      close_if_done(id, s);
      return {};
    }
    case FrameType::kData: {
      auto it = streams_.find(id);
      if (it == streams_.end()) {
        if (auto ec = check_unknown_id(id)) return fail(ec, describe("stream was never opened"));
        return {};
      }
      Stream& s = it->second;
      if (s.remote_closed) return fail(Errc::kUnexpectedFrame, describe("after END"));
      if (f.payload.size() > s.recv_window) {
        return fail(Errc::kFlowControlViolation,
                    describe(std::to_string(f.payload.size()) + " bytes exceed the window of " +
                             std::to_string(s.recv_window)));
      }
      s.recv_window -= static_cast<uint32_t>(f.payload.size());
      s.remote_closed = (f.header.flags & kFlagEnd) != 0;
      events.push_back({.kind = LinkEvent::Kind::kData,
                        .stream_id = id,
                        .data = std::string(f.payload),
                        .end = s.remote_closed});
      close_if_done(id, s);
      return {};
    }
    case FrameType::kReset: {
      auto r = parse_reset(f.payload);
      if (!r) return fail(r.error(), describe("bad payload"));
      if (!streams_.count(id)) {
        if (auto ec = check_unknown_id(id)) return fail(ec, describe("stream was never opened"));
        return {};
      }
      erase(id);
      events.push_back({.kind = LinkEvent::Kind::kReset,
                        .stream_id = id,
                        .code = r->code,
                        .reason = std::string(r->reason)});
      return {};
    }
    case FrameType::kWindowUpdate: {
      const uint32_t inc = parse_u32(f.payload);
      if (inc == 0) return fail(Errc::kBadPayload, describe("zero increment"));
      auto it = streams_.find(id);
      if (it == streams_.end()) {
        if (auto ec = check_unknown_id(id)) return fail(ec, describe("stream was never opened"));
        return {};
      }
      Stream& s = it->second;
      if (uint64_t{s.send_window} + inc > kMaxWindow) {
        return fail(Errc::kWindowOverflow, describe("window would exceed 2^31-1"));
      }
      s.send_window += inc;
      mark_ready(id, s);
      return {};
    }
  }
  return fail(Errc::kUnknownFrameType, describe("unhandled"));
}

void LinkCore::send_hello(std::string_view json) {
  encode_frame(control_, FrameType::kHello, 0, 0, json);
}

void LinkCore::send_accept(std::string_view json, const LinkLimits& peer) {
  encode_frame(control_, FrameType::kAccept, 0, 0, json);
  peer_ = peer;
  established_ = true;
}

void LinkCore::on_accepted(const LinkLimits& peer) {
  peer_ = peer;
  established_ = true;
}

Result<uint32_t> LinkCore::open_stream(std::string_view meta, std::string_view data, bool end) {
  if (failed_ || !established_) return Errc::kUnexpectedFrame;
  if (goaway_received_ || goaway_sent_) return Errc::kGoingAway;
  if (local_opened_ >= peer_.max_streams || next_id_ > kMaxWindow) return Errc::kStreamLimit;
  if (meta.size() + 4 > peer_.max_frame_payload) return Errc::kFrameTooLarge;
  const uint32_t id = next_id_;
  next_id_ += 2;
  Stream& s = streams_[id];
  ++local_opened_;
  s.send_window = peer_.initial_window;
  s.recv_window = local_.initial_window;
  s.open_meta.assign(meta);
  s.open_pending = true;
  if (!data.empty()) {
    s.send_q.emplace_back(data);
    s.queued = data.size();
  }
  s.end_queued = end;
  mark_ready(id, s);
  return id;
}

boost::system::error_code LinkCore::send(uint32_t id, std::string_view data, bool end) {
  auto it = streams_.find(id);
  if (it == streams_.end() || failed_) return Errc::kStreamClosed;
  Stream& s = it->second;
  if (s.end_queued || s.local_closed) return Errc::kStreamClosed;
  if (!data.empty()) {
    s.send_q.emplace_back(data);
    s.queued += data.size();
  }
  s.end_queued = end;
  mark_ready(id, s);
  return {};
}

void LinkCore::consumed(uint32_t id, size_t n) {
  auto it = streams_.find(id);
  if (it == streams_.end() || n == 0) return;
  Stream& s = it->second;
  if (s.remote_closed) return;  // no more data is coming; credit would be wasted
  s.unacked += static_cast<uint32_t>(n);
  if (s.unacked >= local_.initial_window / 4) {
    encode_window_update(control_, id, s.unacked);
    s.recv_window += s.unacked;
    s.unacked = 0;
  }
}

void LinkCore::reset(uint32_t id, ResetCode code, std::string_view reason) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  // A stream whose OPEN never left is unknown to the peer: nothing to tell it.
  if (!it->second.open_pending) encode_reset(control_, id, code, reason);
  erase(id);
}

void LinkCore::ping(uint64_t opaque) {
  if (!failed_) encode_ping(control_, opaque, /*pong=*/false);
}

void LinkCore::goaway(ResetCode code, std::string_view reason) {
  if (failed_ || goaway_sent_) return;
  goaway_sent_ = true;
  encode_goaway(control_, last_peer_id_, code, reason);
}

size_t LinkCore::buffered(uint32_t id) const {
  auto it = streams_.find(id);
  if (it == streams_.end()) return 0;
  return it->second.queued;
}

bool LinkCore::sendable(const Stream& s) const {
  if (s.open_pending) return true;
  if (s.local_closed) return false;
  return (s.queued > 0 && s.send_window > 0) || (s.queued == 0 && s.end_queued);
}

void LinkCore::mark_ready(uint32_t id, Stream& s) {
  if (!s.in_ready && sendable(s)) {
    s.in_ready = true;
    ready_.push_back(id);
  }
}

void LinkCore::erase(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  if (it->second.peer_opened) {
    --peer_opened_;
  } else {
    --local_opened_;
  }
  streams_.erase(it);  // a stale id left in ready_ is skipped by take_output()
}

void LinkCore::close_if_done(uint32_t id, Stream& s) {
  if (s.local_closed && s.remote_closed) erase(id);
}

void LinkCore::emit_chunk(uint32_t id, Stream& s, std::string& out) {
  size_t room = peer_.max_frame_payload;
  if (s.open_pending) room -= 4 + s.open_meta.size();
  const size_t n = std::min({s.queued, size_t{s.send_window}, room});
  const bool end = s.end_queued && n == s.queued;
  if (s.open_pending) {
    encode_open_header(out, id, s.open_meta, n, end);
    s.open_pending = false;
    s.open_meta.clear();
    s.open_meta.shrink_to_fit();
  } else {
    encode_data_header(out, id, n, end);
  }
  // Gather the frame's data from the queued pieces.
  for (size_t left = n; left > 0;) {
    std::string& front = s.send_q.front();
    const size_t take = std::min(left, front.size() - s.send_off);
    out.append(front, s.send_off, take);
    s.send_off += take;
    left -= take;
    if (s.send_off == front.size()) {
      s.send_q.pop_front();
      s.send_off = 0;
    }
  }
  s.queued -= n;
  s.send_window -= static_cast<uint32_t>(n);
  if (end) s.local_closed = true;
}

void LinkCore::take_output(std::string& out, size_t max_bytes) {
  out.append(control_);
  control_.clear();
  while (out.size() < max_bytes && !ready_.empty()) {
    const uint32_t id = ready_.front();
    ready_.pop_front();
    auto it = streams_.find(id);
    if (it == streams_.end()) continue;
    Stream& s = it->second;
    s.in_ready = false;
    if (!sendable(s)) continue;
    emit_chunk(id, s, out);
    if (s.local_closed) {
      close_if_done(id, s);
    } else {
      mark_ready(id, s);
    }
  }
}

}  // namespace airlock::proto
