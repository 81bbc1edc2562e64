#include "sandbox/sse.h"

namespace airlock::sandbox::sse {

bool Parser::feed(std::string_view bytes) {
  if (!error_.empty()) return false;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (c == '\n' && after_cr_) {
      after_cr_ = false;
      continue;
    }
    after_cr_ = c == '\r';
    if (c == '\r' || c == '\n') {
      line(buf_);
      buf_.clear();
      if (!error_.empty()) return false;
      continue;
    }
    buf_ += c;
    if (buf_.size() > max_event_) {
      error_ = "an event-stream line is longer than " + std::to_string(max_event_) + " bytes";
      return false;
    }
  }
  return true;
}

void Parser::line(std::string_view l) {
  if (l.empty()) {  // dispatch
    if (has_data_) {
      building_.id = last_id_;
      ready_.push_back(std::move(building_));
    }
    building_ = Event{};
    has_data_ = false;
    return;
  }
  if (l.front() == ':') return;  // a comment
  std::string_view field = l, value;
  if (const size_t colon = l.find(':'); colon != std::string_view::npos) {
    field = l.substr(0, colon);
    value = l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "event") {
    building_.type = value;
  } else if (field == "data") {
    if (has_data_) building_.data += '\n';
    building_.data += value;
    has_data_ = true;
    if (building_.data.size() > max_event_) {
      error_ = "an event's data is longer than " + std::to_string(max_event_) + " bytes";
    }
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_ = value;
  }
}

std::optional<Event> Parser::next() {
  if (ready_.empty()) return std::nullopt;
  Event e = std::move(ready_.front());
  ready_.pop_front();
  return e;
}

}  // namespace airlock::sandbox::sse
