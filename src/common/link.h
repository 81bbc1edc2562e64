// Link: one live connector link — a LinkCore (sans-IO) driven over a WebSocket transport by
// three coroutines (reader, writer, heartbeat) — and LinkStream, one multiplexed stream on it.
//
// Threading: a Link and its streams belong to the executor they were created on and must only
// be touched from it (airlockd and the connectors run one single-threaded io_context each).
// Lifetime: shared_ptr; streams hold a weak_ptr to their link and outlive it safely.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "airlock/error.h"
#include "common/handshake.h"
#include "common/link_core.h"
#include "common/redactor.h"

namespace airlock {
namespace asio = boost::asio;

// One message-oriented connection (a WebSocket, plain or TLS), type-erased so that only two
// translation units instantiate Beast's templates.
class MessageTransport {
 public:
  virtual ~MessageTransport() = default;
  // Reads one whole binary message; `out` stays valid until the next read. Cancelling the
  // read ends it with operation_aborted and leaves the transport unusable (close it).
  virtual asio::awaitable<boost::system::error_code> read(std::string_view& out) = 0;
  virtual asio::awaitable<boost::system::error_code> write(std::string_view message) = 0;
  // Sends a WebSocket close frame and waits (bounded) for the peer's; then the socket is shut.
  virtual asio::awaitable<void> close(uint16_t code, std::string reason) = 0;
  // Closes the socket at once; pending operations complete with errors.
  virtual void abort() = 0;
  virtual const std::string& remote_address() const = 0;
  virtual asio::any_io_executor executor() = 0;
};

class Link;

class LinkStream {
 public:
  LinkStream(asio::any_io_executor ex, std::weak_ptr<Link> link, uint32_t id, std::string meta);

  uint32_t id() const { return id_; }
  // The opener's metadata (JSON); empty for streams this side opened.
  const std::string& meta() const { return meta_; }
  // The link's executor: the only one from which this stream may be used.
  asio::any_io_executor executor() { return signal_.get_executor(); }

  // Next chunk of the peer's bytes. An empty string means the peer ended the stream; an
  // error means the stream was reset (see reset_reason()) or the link was lost. Cancelling
  // the read leaves the stream intact.
  asio::awaitable<Result<std::string>> read();
  // Reads everything up to the peer's end into one string, failing past `limit` bytes.
  asio::awaitable<Result<std::string>> read_all(size_t limit);
  // Queues `data` and, with `end`, half-closes. Waits while this stream has more than
  // kWriteBuffer bytes queued, so a slow peer slows only this writer. Cancelling the write
  // may leave part of `data` queued; reset the stream afterwards.
  asio::awaitable<boost::system::error_code> write(std::string_view data, bool end);
  // Aborts the stream both ways; pending reads and writes end with kStreamClosed.
  void reset(proto::ResetCode code, std::string_view reason);
  // Connector side: hears of each secret the egress redactor replaced in this stream's bytes,
  // synchronously inside write() or StreamWriter::push(). Without one, the link's
  // on_redacted hears of them.
  void set_redaction_observer(std::function<void(const std::string& secret, uint64_t count)> f) {
    observer_ = std::move(f);
  }

  proto::ResetCode reset_code() const { return reset_code_; }
  const std::string& reset_reason() const { return reset_reason_; }

  static constexpr size_t kWriteBuffer = 256 * 1024;

 private:
  friend class Link;
  friend class StreamWriter;
  // Egress redaction: false when there is nothing to redact (send `data` as it is);
  // otherwise `out` is what to send. Bytes held back stay in the redactor until more
  // arrive or `flush`.
  // `count`, when given, gains the number of occurrences replaced.
  bool redact_out(std::string_view data, bool flush, std::string& out, uint64_t* count = nullptr);
  asio::awaitable<boost::system::error_code> write_raw(std::string_view data, bool end);
  void deliver(std::string data, bool end);
  void fail(boost::system::error_code ec, proto::ResetCode code, std::string reason);
  void wake() { signal_.cancel(); }

  std::weak_ptr<Link> link_;
  uint32_t id_;
  std::string meta_;
  std::deque<std::string> inbox_;
  bool remote_ended_ = false;
  std::optional<boost::system::error_code> error_;
  proto::ResetCode reset_code_ = proto::ResetCode::kNoError;
  std::string reset_reason_;
  asio::steady_timer signal_;
  std::function<void(const std::string&, uint64_t)> observer_;
  std::shared_ptr<const redact::Patterns> patterns_;
  std::unique_ptr<redact::StreamRedactor> redactor_;
};

// Queues data for one stream and writes it in order from a coroutine of its own, with the
// stream's back-pressure, so that synchronous code (message routing) can send without waiting.
// Small pieces queued together go out as one write. After a failed write it drops everything.
// Each push() is one whole message: the egress redactor examines and flushes it at once.
class StreamWriter : public std::enable_shared_from_this<StreamWriter> {
 public:
  explicit StreamWriter(std::shared_ptr<LinkStream> stream) : stream_(std::move(stream)) {}
  void push(std::string data);
  // Two steps of push(), for a caller that reports what redaction did in what it sends:
  // redact() returns one whole message as the stream's redactor leaves it (and adds how many
  // occurrences it replaced to `count`); push_redacted() queues bytes that were.
  std::string redact(std::string data, uint64_t& count);
  void push_redacted(std::string data);
  // Half-closes the stream once everything queued is written.
  void end();
  // Resets the stream with `code` and `reason` once everything queued is written (a reset
  // sent at once could overtake what is queued).
  void reset_after(proto::ResetCode code, std::string reason);
  bool failed() const { return failed_; }

 private:
  asio::awaitable<void> run(std::shared_ptr<StreamWriter> self);
  std::shared_ptr<LinkStream> stream_;
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool failed_ = false;
  bool end_ = false;
  std::optional<std::pair<proto::ResetCode, std::string>> reset_;
};

struct LinkOptions {
  proto::Role role = proto::Role::kConnector;
  proto::LinkLimits limits;
  std::chrono::milliseconds heartbeat_interval{10000};
  std::chrono::milliseconds dead_peer_timeout{30000};
  std::chrono::milliseconds handshake_timeout{10000};
  size_t max_message = 256 * 1024;  // coalesce frames into messages of about this size
  // Connector side: the secrets this side must never send, in any encoding the redactor
  // knows. Everything outgoing passes it before it is framed: stream bytes (a streaming
  // redactor per stream, so an occurrence split across writes is caught), stream metadata,
  // RESET and GOAWAY reasons, and the hello. Asked on every write, so a reloaded set takes
  // over at once (bytes held back move to it). Unset, or returning null: nothing to redact.
  std::function<std::shared_ptr<const redact::Patterns>()> redaction;
  // Hears of redactions that no stream observer claimed (stream 0: hello and GOAWAY).
  std::function<void(uint32_t stream, const std::string& secret, uint64_t count)> on_redacted;
};

class Link : public std::enable_shared_from_this<Link> {
 public:
  using Clock = std::chrono::steady_clock;
  using StreamHandler = std::function<void(std::shared_ptr<LinkStream>)>;

  Link(std::unique_ptr<MessageTransport> transport, LinkOptions options);
  ~Link();

  // Connector side: sends `hello`, waits for ACCEPT. On refusal the error text is airlockd's
  // reason (a version mismatch names both versions). Cancelling aborts the transport.
  asio::awaitable<Result<proto::Accept>> connect_handshake(const proto::Hello& hello,
                                                           std::string& error);
  // airlockd side: waits for and parses HELLO (bounded by handshake_timeout). A hello of
  // another protocol version fails with kProtocolVersionMismatch.
  asio::awaitable<Result<proto::Hello>> read_hello(std::string& error);
  // airlockd side: answers a hello it accepted. The link then adopts the connector's limits.
  void accept(const proto::Accept& accept, const proto::LinkLimits& connector_limits);
  // airlockd side: refuses a hello with a GOAWAY carrying `code` and `reason`, then closes.
  asio::awaitable<void> refuse(proto::ResetCode code, std::string reason);

  // Runs the established link until it closes; returns why it closed. Streams the peer opens
  // are passed to `on_stream`. Cancelling run() closes the link.
  asio::awaitable<std::string> run(StreamHandler on_stream);

  // Opens a stream with `meta` (JSON) and optional first bytes. Fails at once with
  // kStreamLimit or kGoingAway rather than waiting.
  Result<std::shared_ptr<LinkStream>> open(std::string_view meta, std::string_view data,
                                           bool end);
  // Sends GOAWAY and closes as soon as the output is flushed (revocation, protocol errors).
  void shutdown(proto::ResetCode code, std::string reason);
  // Sends GOAWAY, lets open streams finish for up to `grace`, then closes. Returns when the
  // link has closed. Cancelling it closes the link at once.
  asio::awaitable<void> drain(std::chrono::milliseconds grace, std::string reason);

  bool closed() const { return closed_; }
  bool draining() const { return core_.goaway_sent() || core_.goaway_received(); }
  size_t stream_count() const { return core_.stream_count(); }
  Clock::time_point last_received() const { return last_rx_; }
  std::chrono::microseconds last_rtt() const { return last_rtt_; }
  const std::string& remote_address() const { return transport_->remote_address(); }
  const std::string& close_reason() const { return close_reason_; }
  // The peer's GOAWAY, if any: code and reason.
  std::optional<std::pair<proto::ResetCode, std::string>> peer_goaway() const {
    return peer_goaway_;
  }
  asio::any_io_executor executor() { return transport_->executor(); }

 private:
  friend class LinkStream;
  asio::awaitable<void> reader_loop();
  asio::awaitable<void> writer_loop();
  asio::awaitable<void> heartbeat_loop();
  void handle_events();
  void set_close_reason(std::string reason);
  void wake_writer() { writer_signal_.cancel(); }
  void forget_if_closed(uint32_t id);
  // One-shot redaction of a whole piece of text (metadata, reasons, the hello).
  std::string redact_text(std::string_view text, uint32_t stream);

  std::unique_ptr<MessageTransport> transport_;
  LinkOptions options_;
  proto::LinkCore core_;
  StreamHandler on_stream_;
  std::unordered_map<uint32_t, std::shared_ptr<LinkStream>> streams_;
  std::vector<proto::LinkEvent> events_;
  std::string out_;  // the message being written; reused to keep the hot path allocation-free
  asio::steady_timer writer_signal_;   // cancelled when output is queued
  asio::steady_timer drained_signal_;  // cancelled after every write, and when closing
  asio::steady_timer closed_signal_;   // cancelled when run() ends
  Clock::time_point last_rx_;
  // When the write in progress began; max() while none is. The heartbeat checks it, so that a
  // write costs no timer of its own.
  Clock::time_point write_started_ = Clock::time_point::max();
  std::chrono::microseconds last_rtt_{0};
  uint64_t ping_seq_ = 0;
  Clock::time_point ping_sent_;
  bool closing_ = false;
  bool closed_ = false;
  bool running_ = false;
  std::string close_reason_;
  std::optional<std::pair<proto::ResetCode, std::string>> peer_goaway_;
};

}  // namespace airlock
