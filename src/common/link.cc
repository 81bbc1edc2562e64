#include "common/link.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

namespace airlock {
using namespace asio::experimental::awaitable_operators;
using boost::system::error_code;
using proto::LinkEvent;
using proto::ResetCode;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// Signals are timers that never expire: cancel() wakes every waiter, and since the expiry is
// never reset (which would cancel the other waiters), any number may wait at once.
constexpr auto kNever = asio::steady_timer::time_point::max();

asio::awaitable<void> wait_signal(asio::steady_timer& signal) {
  co_await signal.async_wait(kUseTuple);
}

// Runs `op`, giving up after `d`. Returns nullopt on timeout (op is cancelled). For the
// handshake; the running link checks its writes from the heartbeat instead.
asio::awaitable<std::optional<error_code>> with_timeout(asio::awaitable<error_code> op,
                                                        std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  auto r = co_await (std::move(op) || t.async_wait(kUseTuple));
  if (r.index() == 0) co_return std::get<0>(r);
  co_return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
LinkStream::LinkStream(asio::any_io_executor ex, std::weak_ptr<Link> link, uint32_t id,
                       std::string meta)
    : link_(std::move(link)), id_(id), meta_(std::move(meta)), signal_(ex, kNever) {}

void LinkStream::deliver(std::string data, bool end) {
  if (!data.empty()) inbox_.push_back(std::move(data));
  remote_ended_ = remote_ended_ || end;
  wake();
}

void LinkStream::fail(error_code ec, ResetCode code, std::string reason) {
  if (error_) return;
  error_ = ec;
  reset_code_ = code;
  reset_reason_ = std::move(reason);
  wake();
}

asio::awaitable<Result<std::string>> LinkStream::read() {
  for (;;) {
    if (!inbox_.empty()) {
      std::string chunk = std::move(inbox_.front());
      inbox_.pop_front();
      if (auto link = link_.lock()) {
        link->core_.consumed(id_, chunk.size());
        if (link->core_.wants_write()) link->wake_writer();
      }
      co_return chunk;
    }
    if (error_) co_return *error_;
    if (remote_ended_) co_return std::string{};
    co_await wait_signal(signal_);
  }
}

asio::awaitable<Result<std::string>> LinkStream::read_all(size_t limit) {
  std::string all;
  for (;;) {
    auto chunk = co_await read();
    if (!chunk) co_return chunk.error();
    if (chunk->empty()) co_return all;
    if (all.size() + chunk->size() > limit) {
      reset(ResetCode::kRefused, "message larger than " + std::to_string(limit) + " bytes");
      co_return make_error_code(Errc::kFrameTooLarge);
    }
    all += *chunk;
  }
}

asio::awaitable<error_code> LinkStream::write(std::string_view data, bool end) {
  std::string out;
  if (redact_out(data, end, out)) co_return co_await write_raw(out, end);
  co_return co_await write_raw(data, end);
}

bool LinkStream::redact_out(std::string_view data, bool flush, std::string& out, uint64_t* count) {
  auto link = link_.lock();
  if (!link || !link->options_.redaction) return false;
  auto patterns = link->options_.redaction();
  if (patterns == patterns_ && !redactor_) return false;  // no secrets, nothing held
  out.clear();
  if (patterns != patterns_) {
    // A reloaded set: the bytes the old redactor held back are examined by the new one,
    // which knows every secret the old one did (earlier values stay in it).
    std::string held = redactor_ ? redactor_->take_held() : std::string();
    patterns_ = std::move(patterns);
    redactor_ = patterns_ ? std::make_unique<redact::StreamRedactor>(patterns_) : nullptr;
    if (!redactor_) {
      out = std::move(held);
      out.append(data);
      return true;
    }
    redactor_->write(held, out);
  }
  redactor_->write(data, out);
  if (flush) redactor_->finish(out);
  redactor_->take_new_counts([&](size_t secret, uint64_t n) {
    if (count) *count += n;
    if (observer_) {
      observer_(patterns_->name(secret), n);
    } else if (link->options_.on_redacted) {
      link->options_.on_redacted(id_, patterns_->name(secret), n);
    }
  });
  return true;
}

asio::awaitable<error_code> LinkStream::write_raw(std::string_view data, bool end) {
  size_t off = 0;
  for (;;) {
    auto link = link_.lock();
    if (!link || link->closed_ || error_) co_return make_error_code(Errc::kStreamClosed);
    if (link->core_.buffered(id_) >= kWriteBuffer) {
      co_await wait_signal(link->drained_signal_);
      continue;
    }
    // At least one pass, so that an empty write with `end` still sends the END.
    const size_t n = std::min(data.size() - off, kWriteBuffer);
    const bool last = off + n == data.size();
    if (auto ec = link->core_.send(id_, data.substr(off, n), end && last)) co_return ec;
    link->wake_writer();
    off += n;
    if (last) {
      link->forget_if_closed(id_);
      co_return error_code{};
    }
  }
}

void LinkStream::reset(ResetCode code, std::string_view reason) {
  if (auto link = link_.lock()) {
    link->core_.reset(id_, code, link->redact_text(reason, id_));
    link->streams_.erase(id_);
    link->wake_writer();
  }
  fail(Errc::kStreamClosed, code, std::string(reason));
}

// ---------------------------------------------------------------------------------------------
Link::Link(std::unique_ptr<MessageTransport> transport, LinkOptions options)
    : transport_(std::move(transport)),
      options_(options),
      core_(options.role, options.limits),
      writer_signal_(transport_->executor(), kNever),
      drained_signal_(transport_->executor(), kNever),
      closed_signal_(transport_->executor(), kNever),
      last_rx_(Clock::now()) {}

Link::~Link() = default;

void Link::set_close_reason(std::string reason) {
  if (close_reason_.empty()) close_reason_ = std::move(reason);
}

asio::awaitable<Result<proto::Accept>> Link::connect_handshake(const proto::Hello& hello,
                                                               std::string& error) {
  core_.send_hello(redact_text(proto::serialize(hello), 0));
  const std::string out = core_.take_output(options_.max_message);
  auto w = co_await with_timeout(transport_->write(out), options_.handshake_timeout);
  if (!w || *w) {
    error = "sending hello failed: " + (w ? w->message() : std::string("timed out"));
    co_return make_error_code(Errc::kHandshakeRejected);
  }
  for (;;) {
    std::string_view msg;
    auto r = co_await with_timeout(transport_->read(msg), options_.handshake_timeout);
    if (!r) {
      error = "airlockd did not answer the hello within " +
              std::to_string(options_.handshake_timeout.count()) + " ms";
      co_return make_error_code(Errc::kHandshakeRejected);
    }
    if (*r) {
      error = "connection closed during the handshake: " + r->message();
      co_return make_error_code(Errc::kHandshakeRejected);
    }
    if (auto ec = core_.receive(msg, events_)) {
      error = "protocol error during the handshake: " + core_.last_error();
      events_.clear();
      co_return ec;
    }
    for (auto& ev : events_) {
      if (ev.kind == LinkEvent::Kind::kGoAway) {
        error = ev.reason.empty() ? std::string(proto::to_string(ev.code)) : ev.reason;
        events_.clear();
        co_return make_error_code(ev.code == ResetCode::kVersionMismatch
                                      ? Errc::kProtocolVersionMismatch
                                      : Errc::kHandshakeRejected);
      }
      if (ev.kind == LinkEvent::Kind::kAccept) {
        proto::Accept accept;
        if (!proto::parse_accept(ev.data, accept, error)) {
          events_.clear();
          co_return make_error_code(Errc::kHandshakeRejected);
        }
        core_.on_accepted(accept.limits);
        options_.heartbeat_interval = accept.heartbeat_interval;
        options_.dead_peer_timeout = accept.dead_peer_timeout;
        events_.clear();
        co_return accept;
      }
    }
    events_.clear();
  }
}

asio::awaitable<Result<proto::Hello>> Link::read_hello(std::string& error) {
  std::string_view msg;
  auto r = co_await with_timeout(transport_->read(msg), options_.handshake_timeout);
  if (!r || *r) {
    error = r ? "connection closed before hello: " + r->message() : "no hello within timeout";
    co_return make_error_code(Errc::kHandshakeRejected);
  }
  if (auto ec = core_.receive(msg, events_)) {
    error = core_.last_error();
    events_.clear();
    co_return ec;
  }
  proto::Hello hello;
  const bool ok = events_.size() == 1 && proto::parse_hello(events_[0].data, hello, error);
  if (error.empty() && !ok) error = "expected one HELLO frame";
  events_.clear();
  if (!ok && hello.protocol_version != 0 && hello.protocol_version != proto::kProtocolVersion) {
    co_return make_error_code(Errc::kProtocolVersionMismatch);
  }
  if (!ok) co_return make_error_code(Errc::kHandshakeRejected);
  co_return hello;
}

void Link::accept(const proto::Accept& accept, const proto::LinkLimits& connector_limits) {
  core_.send_accept(proto::serialize(accept), connector_limits);
  options_.heartbeat_interval = accept.heartbeat_interval;
  options_.dead_peer_timeout = accept.dead_peer_timeout;
}

std::string Link::redact_text(std::string_view text, uint32_t stream) {
  auto patterns = options_.redaction ? options_.redaction() : nullptr;
  if (!patterns) return std::string(text);
  redact::StreamRedactor r(patterns);
  std::string out;
  r.write(text, out);
  r.finish(out);
  r.take_new_counts([&](size_t secret, uint64_t n) {
    if (options_.on_redacted) options_.on_redacted(stream, patterns->name(secret), n);
  });
  return out;
}

asio::awaitable<void> Link::refuse(ResetCode code, std::string reason) {
  reason = redact_text(reason, 0);
  if (!core_.failed()) core_.goaway(code, reason);
  const std::string out = core_.take_output(options_.max_message);
  co_await with_timeout(transport_->write(out), options_.handshake_timeout);
  co_await transport_->close(1008, reason.substr(0, 120));
  closed_ = true;
}

Result<std::shared_ptr<LinkStream>> Link::open(std::string_view meta, std::string_view data,
                                               bool end) {
  if (closed_ || closing_) return make_error_code(Errc::kGoingAway);
  // With redaction, the stream exists before its first bytes are examined, so that its
  // redactor (and what it holds back) carries on into later writes.
  std::shared_ptr<LinkStream> stream;
  std::string redacted;
  if (options_.redaction) {
    stream = std::make_shared<LinkStream>(executor(), weak_from_this(), 0, std::string());
    if (stream->redact_out(data, end, redacted)) data = redacted;
  }
  auto first = data.substr(0, std::min(data.size(), LinkStream::kWriteBuffer));
  auto id = core_.open_stream(options_.redaction ? redact_text(meta, 0) : std::string(meta),
                              first, end && first.size() == data.size());
  if (!id) return id.error();
  if (stream) {
    stream->id_ = *id;
  } else {
    stream = std::make_shared<LinkStream>(executor(), weak_from_this(), *id, std::string());
  }
  streams_[*id] = stream;
  wake_writer();
  if (first.size() < data.size()) {
    // Rare: a huge first message. The rest goes through the normal, backpressured path, from
    // a copy: the caller's bytes need not outlive this call.
    asio::co_spawn(
        executor(),
        [stream, rest = std::string(data.substr(first.size())), end]() -> asio::awaitable<void> {
          co_await stream->write_raw(rest, end);
        },
        asio::detached);
  }
  return stream;
}

void Link::shutdown(ResetCode code, std::string reason) {
  if (closing_ || closed_) return;
  reason = redact_text(reason, 0);
  core_.goaway(code, reason);
  set_close_reason(std::move(reason));
  closing_ = true;
  wake_writer();
}

asio::awaitable<void> Link::drain(std::chrono::milliseconds grace, std::string reason) {
  auto self = shared_from_this();  // callers often spawn this and drop their reference
  if (!closed_) {
    reason = redact_text(reason, 0);
    core_.goaway(ResetCode::kShutdown, reason);
    wake_writer();
    const auto deadline = Clock::now() + grace;
    asio::steady_timer poll(executor());
    while (!closed_ && core_.stream_count() > 0 && Clock::now() < deadline) {
      poll.expires_after(std::chrono::milliseconds(20));
      co_await poll.async_wait(kUseTuple);
    }
    shutdown(ResetCode::kShutdown, std::move(reason));
  }
  asio::steady_timer bound(executor(), std::chrono::seconds(5));
  while (!closed_ && running_) {
    auto r = co_await (closed_signal_.async_wait(kUseTuple) || bound.async_wait(kUseTuple));
    if (r.index() == 1) {
      transport_->abort();
      break;
    }
  }
}

void Link::forget_if_closed(uint32_t id) {
  if (!core_.is_open(id)) streams_.erase(id);
  if (core_.goaway_received() && core_.stream_count() == 0 && !closing_) {
    set_close_reason("peer went away" + (peer_goaway_ && !peer_goaway_->second.empty()
                                             ? ": " + peer_goaway_->second
                                             : std::string()));
    closing_ = true;
    wake_writer();
  }
}

void Link::handle_events() {
  // The core has already applied every frame of the message, so a stream it reports closed
  // may still have events further down this batch: forget streams only after the batch.
  for (auto& ev : events_) {
    switch (ev.kind) {
      case LinkEvent::Kind::kOpen: {
        auto s = std::make_shared<LinkStream>(executor(), weak_from_this(), ev.stream_id,
                                              std::move(ev.meta));
        streams_[ev.stream_id] = s;
        s->deliver(std::move(ev.data), ev.end);
        if (on_stream_) {
          on_stream_(s);
        } else {
          s->reset(ResetCode::kRefused, "this side accepts no streams");
        }
        break;
      }
      case LinkEvent::Kind::kData:
        if (auto it = streams_.find(ev.stream_id); it != streams_.end()) {
          it->second->deliver(std::move(ev.data), ev.end);
        }
        break;
      case LinkEvent::Kind::kReset:
        if (auto it = streams_.find(ev.stream_id); it != streams_.end()) {
          it->second->fail(Errc::kStreamClosed, ev.code, std::move(ev.reason));
          streams_.erase(it);
        }
        break;
      case LinkEvent::Kind::kPong:
        if (ev.opaque == ping_seq_) {
          last_rtt_ = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() -
                                                                             ping_sent_);
        }
        break;
      case LinkEvent::Kind::kGoAway:
        peer_goaway_ = std::make_pair(ev.code, ev.reason);
        break;
      case LinkEvent::Kind::kHello:
      case LinkEvent::Kind::kAccept:
        break;  // LinkCore refuses these once established
    }
  }
  for (const auto& ev : events_) {
    if (ev.stream_id != 0) forget_if_closed(ev.stream_id);
  }
  events_.clear();
  if (core_.goaway_received()) forget_if_closed(0);
  if (core_.wants_write()) wake_writer();
}

asio::awaitable<void> Link::reader_loop() {
  for (;;) {
    std::string_view msg;
    const error_code ec = co_await transport_->read(msg);
    if (ec) {
      if (peer_goaway_) {
        set_close_reason("peer went away (" + std::string(proto::to_string(peer_goaway_->first)) +
                         ")" + (peer_goaway_->second.empty() ? "" : ": " + peer_goaway_->second));
      } else {
        set_close_reason("connection lost: " + ec.message());
      }
      co_return;
    }
    last_rx_ = Clock::now();
    if (core_.receive(msg, events_)) {
      handle_events();
      set_close_reason("protocol error from " + transport_->remote_address() + ": " +
                       core_.last_error());
      closing_ = true;
      wake_writer();
      asio::steady_timer forever(executor(), asio::steady_timer::time_point::max());
      co_await forever.async_wait(kUseTuple);  // ends when the writer has flushed the GOAWAY
      co_return;
    }
    handle_events();
  }
}

asio::awaitable<void> Link::writer_loop() {
  for (;;) {
    while (core_.wants_write()) {
      out_.clear();
      core_.take_output(out_, options_.max_message);
      if (out_.empty()) break;
      drained_signal_.cancel();
      // A write that never finishes is ended by heartbeat_loop (see write_started_).
      write_started_ = Clock::now();
      const error_code ec = co_await transport_->write(out_);
      write_started_ = Clock::time_point::max();
      if (ec) {
        set_close_reason("write failed: " + ec.message());
        co_return;
      }
    }
    if (closing_) co_return;
    co_await wait_signal(writer_signal_);
  }
}

asio::awaitable<void> Link::heartbeat_loop() {
  asio::steady_timer tick(executor());
  const auto period = std::min(options_.heartbeat_interval, options_.dead_peer_timeout / 3);
  for (;;) {
    tick.expires_after(period);
    co_await tick.async_wait(kUseTuple);
    // Ending this loop ends run()'s group, which cancels the stalled write.
    if (write_started_ != Clock::time_point::max() &&
        Clock::now() - write_started_ > options_.dead_peer_timeout) {
      set_close_reason("write stalled for longer than the dead-peer timeout");
      co_return;
    }
    const auto silent = Clock::now() - last_rx_;
    if (silent > options_.dead_peer_timeout) {
      set_close_reason("peer dead: nothing received for " +
                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          silent).count()) + " ms");
      co_return;
    }
    ping_sent_ = Clock::now();
    core_.ping(++ping_seq_);
    wake_writer();
  }
}

asio::awaitable<std::string> Link::run(StreamHandler on_stream) {
  auto self = shared_from_this();
  on_stream_ = std::move(on_stream);
  running_ = true;
  last_rx_ = Clock::now();
  if (!closed_) co_await (reader_loop() || writer_loop() || heartbeat_loop());
  closed_ = true;
  set_close_reason("closed");
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, s] : streams) {
    s->fail(Errc::kLinkClosed, ResetCode::kUnavailable, "link closed: " + close_reason_);
  }
  drained_signal_.cancel();
  const bool protocol_error = core_.failed();
  co_await transport_->close(protocol_error ? 1002 : 1000, close_reason_.substr(0, 120));
  running_ = false;
  closed_signal_.cancel();
  on_stream_ = nullptr;
  co_return close_reason_;
}

void StreamWriter::push(std::string data) {
  uint64_t ignored = 0;
  push_redacted(redact(std::move(data), ignored));
}

std::string StreamWriter::redact(std::string data, uint64_t& count) {
  std::string redacted;
  if (stream_->redact_out(data, /*flush=*/true, redacted, &count)) return redacted;
  return data;
}

void StreamWriter::push_redacted(std::string data) {
  if (failed_ || end_) return;
  queue_.push_back(std::move(data));
  if (writing_) return;
  writing_ = true;
  asio::co_spawn(stream_->executor(), run(shared_from_this()), asio::detached);
}

void StreamWriter::end() {
  if (failed_ || end_) return;
  end_ = true;
  if (writing_) return;
  writing_ = true;
  asio::co_spawn(stream_->executor(), run(shared_from_this()), asio::detached);
}

void StreamWriter::reset_after(proto::ResetCode code, std::string reason) {
  if (failed_ || end_) return;
  end_ = true;
  reset_.emplace(code, std::move(reason));
  if (writing_) return;
  writing_ = true;
  asio::co_spawn(stream_->executor(), run(shared_from_this()), asio::detached);
}

asio::awaitable<void> StreamWriter::run([[maybe_unused]] std::shared_ptr<StreamWriter> self) {
  for (;;) {
    if (queue_.empty()) {
      if (reset_) {
        stream_->reset(reset_->first, reset_->second);
      } else if (end_) {
        co_await stream_->write_raw("", true);
      }
      break;
    }
    std::string chunk = std::move(queue_.front());
    queue_.pop_front();
    while (!queue_.empty() && chunk.size() < 64 * 1024) {
      chunk += queue_.front();
      queue_.pop_front();
    }
    const bool last = end_ && !reset_ && queue_.empty();
    if (auto ec = co_await stream_->write_raw(chunk, last)) {
      failed_ = true;
      queue_.clear();
      break;
    }
    if (last) break;
  }
  writing_ = false;
}

}  // namespace airlock
