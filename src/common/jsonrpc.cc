#include "common/jsonrpc.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace airlock::jsonrpc {
namespace {
const json::value kNull;
}

std::string_view Message::method() const {
  if (auto* m = body.if_contains("method"); m && m->is_string()) return m->as_string();
  return {};
}

const json::value& Message::id() const {
  if (auto* i = body.if_contains("id")) return *i;
  return kNull;
}

const json::object* Message::params() const {
  if (auto* p = body.if_contains("params"); p && p->is_object()) return &p->as_object();
  return nullptr;
}

std::optional<Message> classify(json::value v, std::string& error) {
  if (v.is_array()) {
    error =
        "JSON-RPC batches are not supported (MCP removed them in 2025-06-18); send one "
        "message per request";
    return std::nullopt;
  }
  if (!v.is_object()) {
    error = "a JSON-RPC message must be a JSON object";
    return std::nullopt;
  }
  auto& o = v.as_object();
  auto* ver = o.if_contains("jsonrpc");
  if (!ver || !ver->is_string() || ver->as_string() != "2.0") {
    error = "missing or wrong \"jsonrpc\": must be \"2.0\"";
    return std::nullopt;
  }
  auto* id = o.if_contains("id");
  if (id && !id->is_string() && !id->is_int64() && !id->is_uint64() && !id->is_null()) {
    error = "\"id\" must be a string or an integer";
    return std::nullopt;
  }
  auto* method = o.if_contains("method");
  Message m;
  if (method) {
    if (!method->is_string() || method->as_string().empty()) {
      error = "\"method\" must be a non-empty string";
      return std::nullopt;
    }
    if (auto* p = o.if_contains("params"); p && !p->is_object() && !p->is_array()) {
      error = "\"params\" must be an object";
      return std::nullopt;
    }
    if (id && id->is_null()) {
      error = "a request's \"id\" must not be null";
      return std::nullopt;
    }
    m.kind = id ? Kind::kRequest : Kind::kNotification;
  } else {
    const bool has_result = o.contains("result");
    const bool has_error = o.contains("error");
    if (!id || has_result == has_error) {
      error =
          "not a request, notification or response: needs \"method\", or \"id\" with "
          "exactly one of \"result\" and \"error\"";
      return std::nullopt;
    }
    if (has_error && !o.at("error").is_object()) {
      error = "\"error\" must be an object";
      return std::nullopt;
    }
    m.kind = Kind::kResponse;
  }
  m.body = std::move(o);
  return m;
}

std::optional<Message> parse(std::string_view text, std::string& error, bool* is_batch) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) {
    error = "body is not valid JSON: " + ec.message();
    return std::nullopt;
  }
  if (is_batch) *is_batch = v.is_array();
  return classify(std::move(v), error);
}

json::object make_request(json::value id, std::string_view method, json::object params) {
  return {
      {"jsonrpc", "2.0"}, {"id", std::move(id)}, {"method", method}, {"params", std::move(params)}};
}

json::object make_notification(std::string_view method, json::object params) {
  return {{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}};
}

json::object make_result(json::value id, json::value result) {
  return {{"jsonrpc", "2.0"}, {"id", std::move(id)}, {"result", std::move(result)}};
}

json::object make_error(json::value id, int code, std::string_view message, json::value data) {
  json::object e{{"code", code}, {"message", message}};
  if (!data.is_null()) e["data"] = std::move(data);
  return {{"jsonrpc", "2.0"}, {"id", std::move(id)}, {"error", std::move(e)}};
}

std::string id_key(const json::value& id) {
  if (id.is_string()) return "s:" + std::string(id.as_string());
  if (id.is_int64()) return "n:" + std::to_string(id.as_int64());
  if (id.is_uint64()) return "n:" + std::to_string(id.as_uint64());
  return "x:" + json::serialize(id);
}

bool LineSplitter::feed(std::string_view data) {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 64 * 1024 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(data);
  // The unterminated tail must stay within the limit.
  const size_t nl = buf_.rfind('\n');
  const size_t tail_start = nl == std::string::npos ? pos_ : nl + 1;
  return buf_.size() - std::max(tail_start, pos_) <= max_line_;
}

std::optional<std::string> LineSplitter::next() {
  for (;;) {
    const size_t nl = buf_.find('\n', pos_);
    if (nl == std::string::npos) return std::nullopt;
    size_t end = nl;
    if (end > pos_ && buf_[end - 1] == '\r') --end;
    std::string line = buf_.substr(pos_, end - pos_);
    pos_ = nl + 1;
    if (line.empty() && skip_empty_) continue;
    return line;
  }
}

bool SseParser::feed_line(std::string_view line) {
  if (line.empty()) {
    if (pending_any_) {
      if (pending_.has_id) last_id_ = pending_.id;
      ready_.push_back(std::move(pending_));
    }
    pending_ = SseEvent{};
    pending_any_ = false;
    data_lines_ = 0;
    return true;
  }
  if (line.front() == ':') return true;  // comment / keep-alive
  std::string_view field = line, value;
  if (auto c = line.find(':'); c != std::string_view::npos) {
    field = line.substr(0, c);
    value = line.substr(c + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (data_lines_++ > 0) pending_.data += '\n';
    pending_.data.append(value);
    pending_any_ = true;
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) {
      pending_.id = std::string(value);
      pending_.has_id = true;
      pending_any_ = true;
    }
  } else if (field == "event") {
    pending_.event = std::string(value);
    pending_any_ = true;
  } else if (field == "retry") {
    try {
      pending_.retry_ms = std::stol(std::string(value));
      pending_any_ = true;
    } catch (const std::exception&) {
    }
  }
  return pending_.data.size() <= max_event_;
}

bool SseParser::feed(std::string_view data) {
  if (!lines_.feed(data)) return false;
  while (auto line = lines_.next()) {
    if (!feed_line(*line)) return false;
  }
  return true;
}

std::optional<SseEvent> SseParser::next() {
  if (ready_pos_ >= ready_.size()) {
    ready_.clear();
    ready_pos_ = 0;
    return std::nullopt;
  }
  return std::move(ready_[ready_pos_++]);
}

std::string format_sse(std::string_view id, std::string_view data, std::optional<long> retry_ms) {
  std::string out;
  out.reserve(data.size() + id.size() + 32);
  if (!id.empty()) {
    out += "id: ";
    out += id;
    out += '\n';
  }
  if (retry_ms) out += "retry: " + std::to_string(*retry_ms) + "\n";
  size_t start = 0;
  for (;;) {
    const size_t nl = data.find('\n', start);
    out += "data: ";
    out += data.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    out += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  out += '\n';
  return out;
}

}  // namespace airlock::jsonrpc
