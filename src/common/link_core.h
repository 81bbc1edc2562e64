// LinkCore: the sans-IO state machine of one connector link (one WebSocket connection).
//
// It turns received WebSocket messages into events and application calls into outgoing
// messages: handshake ordering, stream ids, per-stream flow control, fair interleaving of
// stream data in bounded chunks, ping/pong and goaway. It never touches a socket or a clock,
// so tests and fuzzers drive it byte by byte. Not thread-safe: the owning Link (link.h) calls it
// from its connection's single executor.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "airlock/error.h"
#include "airlock/protocol.h"
#include "common/frame_codec.h"

namespace airlock::proto {

// airlockd opens odd stream ids, connectors even ones, so both may open streams at once.
enum class Role { kControlPlane, kConnector };

struct LinkEvent {
  enum class Kind { kHello, kAccept, kOpen, kData, kReset, kPong, kGoAway };
  Kind kind;
  uint32_t stream_id = 0;
  std::string meta;  // kOpen: the opener's JSON metadata
  std::string data;  // kOpen, kData: stream bytes; kHello, kAccept: the JSON body
  bool end = false;  // kOpen, kData: the peer half-closed
  ResetCode code = ResetCode::kNoError;  // kReset, kGoAway
  std::string reason;                    // kReset, kGoAway
  uint64_t opaque = 0;                   // kPong
  uint32_t last_stream_id = 0;           // kGoAway
};

class LinkCore {
 public:
  LinkCore(Role role, LinkLimits local);

  // Feeds one received WebSocket message (one or more whole frames) and appends what happened
  // to `events`. On a protocol violation returns the error, queues a GOAWAY naming it (see
  // last_error()) and accepts nothing more: the caller flushes output and closes the link.
  boost::system::error_code receive(std::string_view message, std::vector<LinkEvent>& events);

  // Handshake. The connector sends hello first; airlockd answers accept (or goaway) once it
  // has checked the hello. `peer` are the limits the other side advertised in its message.
  void send_hello(std::string_view json);
  void send_accept(std::string_view json, const LinkLimits& peer);
  void on_accepted(const LinkLimits& peer);
  bool established() const { return established_; }

  // Opens a stream; `data` rides on the OPEN frame as far as the window and chunk size allow.
  Result<uint32_t> open_stream(std::string_view meta, std::string_view data, bool end);
  // Queues bytes on an open stream; `end` half-closes after them. Never blocks: callers bound
  // their own buffering with buffered().
  boost::system::error_code send(uint32_t id, std::string_view data, bool end);
  // The application has taken `n` received bytes of stream `id`: grants the peer more credit.
  void consumed(uint32_t id, size_t n);
  // Aborts a stream in both directions.
  void reset(uint32_t id, ResetCode code, std::string_view reason);
  void ping(uint64_t opaque);
  // Tells the peer to open no more streams; streams already open may finish.
  void goaway(ResetCode code, std::string_view reason);

  bool wants_write() const { return !control_.empty() || !ready_.empty(); }
  // Appends the next WebSocket message to `out`: control frames first, then stream data
  // round-robin, one chunk per stream per turn, until `out` holds about `max_bytes`. Appends
  // nothing when idle. Callers reuse `out` so that the hot path allocates nothing.
  void take_output(std::string& out, size_t max_bytes);
  std::string take_output(size_t max_bytes) {
    std::string out;
    take_output(out, max_bytes);
    return out;
  }

  size_t buffered(uint32_t id) const;
  bool is_open(uint32_t id) const { return streams_.count(id) != 0; }
  size_t stream_count() const { return streams_.size(); }
  bool goaway_sent() const { return goaway_sent_; }
  bool goaway_received() const { return goaway_received_; }
  bool failed() const { return failed_; }
  const std::string& last_error() const { return last_error_; }
  const LinkLimits& local_limits() const { return local_; }
  const LinkLimits& peer_limits() const { return peer_; }

 private:
  struct Stream {
    uint32_t send_window = 0;  // credit the peer granted us
    uint32_t recv_window = 0;  // credit we granted the peer, not yet used
    uint32_t unacked = 0;      // consumed by the application, not yet granted back
    // Bytes queued to send, as the pieces the application handed over; the front piece is
    // consumed from send_off. Never one growing string: that would copy on every append.
    std::deque<std::string> send_q;
    size_t send_off = 0;
    size_t queued = 0;
    std::string open_meta;
    bool open_pending = false;  // OPEN not sent yet
    bool end_queued = false;    // END goes out after the queued bytes
    bool local_closed = false;  // END sent
    bool remote_closed = false; // END received
    bool in_ready = false;
    bool peer_opened = false;
  };

  boost::system::error_code fail(boost::system::error_code ec, std::string reason);
  boost::system::error_code handle(const FrameView& f, std::vector<LinkEvent>& events);
  boost::system::error_code check_unknown_id(uint32_t id) const;
  bool is_peer_id(uint32_t id) const { return (id & 1u) == (role_ == Role::kConnector ? 1u : 0u); }
  bool sendable(const Stream& s) const;
  void mark_ready(uint32_t id, Stream& s);
  void erase(uint32_t id);
  void close_if_done(uint32_t id, Stream& s);
  void emit_chunk(uint32_t id, Stream& s, std::string& out);

  Role role_;
  LinkLimits local_;
  LinkLimits peer_;
  bool established_ = false;
  bool hello_seen_ = false;
  bool goaway_sent_ = false;
  bool goaway_received_ = false;
  bool failed_ = false;
  std::string last_error_;
  uint32_t next_id_;
  uint32_t last_peer_id_ = 0;
  uint32_t local_opened_ = 0;  // open streams we started
  uint32_t peer_opened_ = 0;   // open streams the peer started
  uint64_t frames_received_ = 0;
  std::unordered_map<uint32_t, Stream> streams_;
  std::deque<uint32_t> ready_;
  std::string control_;
};

}  // namespace airlock::proto
