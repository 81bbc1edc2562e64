#include "sandbox/toolbox_protocol.h"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace airlock::sandbox::toolbox {
namespace json = boost::json;

namespace {

constexpr Op kOps[] = {Op::kBash, Op::kRead, Op::kWrite, Op::kEdit, Op::kGlob,
                       Op::kGrep, Op::kFetch, Op::kExec, Op::kCancel};

std::string frame(const json::object& o) {
  const std::string body = json::serialize(o);
  std::string out(4, '\0');
  const auto n = static_cast<uint32_t>(body.size());
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  out += body;
  return out;
}

bool parse_object(std::string_view text, json::object& out, std::string& error) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    error = ec ? "not valid JSON: " + ec.message() : "must be a JSON object";
    return false;
  }
  out = std::move(v.as_object());
  return true;
}

// Typed field access; the first problem is kept in `error`.
struct Fields {
  const json::object& o;
  std::string& error;
  bool bad(std::string_view key, std::string_view why) {
    if (error.empty()) error = std::string(key) + " " + std::string(why);
    return false;
  }
  bool str(std::string_view key, std::string& out) {
    auto* v = o.if_contains(key);
    if (!v) return true;
    if (!v->is_string()) return bad(key, "must be a string");
    out = std::string(v->as_string());
    return true;
  }
  bool u64(std::string_view key, uint64_t& out) {
    auto* v = o.if_contains(key);
    if (!v) return true;
    if (v->is_uint64()) out = v->as_uint64();
    else if (v->is_int64() && v->as_int64() >= 0) out = static_cast<uint64_t>(v->as_int64());
    else return bad(key, "must be a non-negative integer");
    return true;
  }
  bool flag(std::string_view key, bool& out) {
    auto* v = o.if_contains(key);
    if (!v) return true;
    if (!v->is_bool()) return bad(key, "must be true or false");
    out = v->as_bool();
    return true;
  }
};

}  // namespace

std::string_view to_string(Op op) {
  switch (op) {
    case Op::kBash: return "bash";
    case Op::kRead: return "read";
    case Op::kWrite: return "write";
    case Op::kEdit: return "edit";
    case Op::kGlob: return "glob";
    case Op::kGrep: return "grep";
    case Op::kFetch: return "web_fetch";
    case Op::kExec: return "exec";
    case Op::kCancel: return "cancel";
  }
  return "unknown";
}

std::string encode(const Request& r) {
  json::object o{{"id", r.id}, {"op", to_string(r.op)}};
  switch (r.op) {
    case Op::kBash:
      o["command"] = r.command;
      if (r.restart) o["restart"] = true;
      o["timeout_ms"] = r.timeout_ms;
      break;
    case Op::kRead:
      o["path"] = r.path;
      if (r.view_range) o["view_range"] = json::array{r.view_range->first, r.view_range->second};
      break;
    case Op::kWrite:
      o["path"] = r.path;
      o["content"] = r.content;
      if (r.content_base64) o["content_base64"] = true;
      if (r.executable) o["executable"] = true;
      break;
    case Op::kEdit:
      o["path"] = r.path;
      o["old_string"] = r.old_string;
      o["new_string"] = r.new_string;
      if (r.replace_all) o["replace_all"] = true;
      break;
    case Op::kGlob:
    case Op::kGrep:
      o["path"] = r.path;
      o["pattern"] = r.pattern;
      break;
    case Op::kFetch:
      o["url"] = r.url;
      o["timeout_ms"] = r.timeout_ms;
      break;
    case Op::kExec:
      o["argv"] = json::array(r.argv.begin(), r.argv.end());
      o["timeout_ms"] = r.timeout_ms;
      break;
    case Op::kCancel:
      o["target"] = r.target;
      break;
  }
  if (r.style == Style::kManagedAgents) o["style"] = "managed_agents";
  return frame(o);
}

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok && len > 1) {
      // Overlong forms, surrogates and values past U+10FFFF are invalid too.
      uint32_t cp = c & (0xFF >> (len + 1));
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      ok = !((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
             (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

std::string encode(const Reply& r) {
  json::object o{{"id", r.id}};
  if (r.progress) {
    o["progress"] = true;
    o["elapsed_ms"] = r.elapsed_ms;
    return frame(o);
  }
  o["is_error"] = r.is_error;
  o["text"] = valid_utf8(r.text);
  if (r.exit_code) o["exit_code"] = *r.exit_code;
  if (!r.media_type.empty()) {
    o["media_type"] = r.media_type;
    o["data"] = r.data;
  }
  return frame(o);
}

bool parse_request(std::string_view text, Request& out, std::string& error) {
  error.clear();
  out = Request{};
  json::object o;
  if (!parse_object(text, o, error)) return false;
  Fields f{o, error};
  std::string op;
  if (!f.u64("id", out.id) || !f.str("op", op)) return false;
  bool known = false;
  for (Op k : kOps) {
    if (op == to_string(k)) {
      out.op = k;
      known = true;
    }
  }
  if (!known) return f.bad("op", "'" + op + "' is not an operation of the toolbox");
  if (!f.str("command", out.command) || !f.flag("restart", out.restart) ||
      !f.u64("timeout_ms", out.timeout_ms) || !f.str("path", out.path) ||
      !f.str("content", out.content) || !f.str("old_string", out.old_string) ||
      !f.str("new_string", out.new_string) || !f.flag("replace_all", out.replace_all) ||
      !f.str("pattern", out.pattern) || !f.str("url", out.url) || !f.u64("target", out.target) ||
      !f.flag("content_base64", out.content_base64) || !f.flag("executable", out.executable)) {
    return false;
  }
  std::string style;
  if (!f.str("style", style)) return false;
  if (style == "managed_agents") {
    out.style = Style::kManagedAgents;
  } else if (!style.empty() && style != "mcp") {
    return f.bad("style", "'" + style + "' is not a style of the toolbox");
  }
  if (auto* vr = o.if_contains("view_range")) {
    if (!vr->is_array() || vr->as_array().size() != 2 || !vr->as_array()[0].is_int64() ||
        !vr->as_array()[1].is_int64()) {
      return f.bad("view_range", "must be two integers");
    }
    out.view_range = {vr->as_array()[0].as_int64(), vr->as_array()[1].as_int64()};
  }
  if (auto* argv = o.if_contains("argv")) {
    if (!argv->is_array()) return f.bad("argv", "must be an array of strings");
    for (const auto& a : argv->as_array()) {
      if (!a.is_string()) return f.bad("argv", "must be an array of strings");
      out.argv.emplace_back(a.as_string());
    }
  }
  return true;
}

bool parse_reply(std::string_view text, Reply& out, std::string& error) {
  error.clear();
  out = Reply{};
  json::object o;
  if (!parse_object(text, o, error)) return false;
  Fields f{o, error};
  if (!f.u64("id", out.id) || !f.flag("progress", out.progress) ||
      !f.u64("elapsed_ms", out.elapsed_ms) || !f.flag("is_error", out.is_error) ||
      !f.str("text", out.text)) {
    return false;
  }
  if (auto* c = o.if_contains("exit_code")) {
    if (!c->is_int64()) return f.bad("exit_code", "must be an integer");
    out.exit_code = static_cast<int>(c->as_int64());
  }
  if (!f.str("media_type", out.media_type) || !f.str("data", out.data)) return false;
  return true;
}

bool FrameReader::feed(std::string_view bytes) {
  if (failed_) return false;
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  buf_.append(bytes);
  if (buf_.size() - pos_ >= 4) {
    const auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
    const uint32_t n = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
    if (n > kMaxFrame) failed_ = true;
  }
  return !failed_;
}

std::optional<std::string> FrameReader::next() {
  if (failed_ || buf_.size() - pos_ < 4) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
  const uint32_t n = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  if (n > kMaxFrame) {
    failed_ = true;
    return std::nullopt;
  }
  if (buf_.size() - pos_ - 4 < n) return std::nullopt;
  std::string out = buf_.substr(pos_ + 4, n);
  pos_ += 4 + n;
  if (pos_ > 1024 * 1024 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  // A following frame's header may announce too much; check it now.
  if (buf_.size() - pos_ >= 4) {
    const auto* q = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
    const uint32_t m = (uint32_t{q[0]} << 24) | (uint32_t{q[1]} << 16) | (uint32_t{q[2]} << 8) | q[3];
    if (m > kMaxFrame) failed_ = true;
  }
  return out;
}

}  // namespace airlock::sandbox::toolbox
