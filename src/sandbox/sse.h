// Server-sent events (the WHATWG event-stream format) as Claude Managed Agents' session event
// stream sends them: plain code over bytes, no I/O. Bytes go in as they arrive, in pieces of
// any size; whole events come out. Comments (": keep-alive") and fields other than event, data
// and id are skipped; an event is dispatched at a blank line; CRLF, CR and LF all end a line.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace airlock::sandbox::sse {

struct Event {
  std::string type = "message";  // the `event:` field, or "message"
  std::string data;              // `data:` lines joined with "\n"
  std::string id;                // the last `id:` seen, as the stream's last event id
};

class Parser {
 public:
  // An event whose data would exceed `max_event` bytes fails the stream (feed() returns false).
  explicit Parser(size_t max_event = 16 * 1024 * 1024) : max_event_(max_event) {}

  // False once the stream cannot be trusted (an event over the limit); error() says why.
  bool feed(std::string_view bytes);
  // The next whole event, if one has arrived.
  std::optional<Event> next();
  const std::string& error() const { return error_; }

 private:
  void line(std::string_view l);

  size_t max_event_;
  std::string buf_;        // an unfinished line
  bool after_cr_ = false;  // the last byte was CR: an LF right after it ends nothing more
  Event building_;
  bool has_data_ = false;
  std::string last_id_;
  std::deque<Event> ready_;
  std::string error_;
};

}  // namespace airlock::sandbox::sse
