// Typed access to the fields of a JSON object that a peer sent, for the parsers of the
// connector protocol's JSON bodies (handshake.cc, stream_contract.cc). Each accessor checks
// type and size and records the first problem with the field's full path, so that an error
// says exactly which field was wrong. Plain code over values; header-only, no I/O.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::proto {

// The string at `key`, or empty when it is missing or not a string: for fields read leniently
// (a Managed Agents event's, whose absence means the same as empty).
inline std::string string_or_empty(const boost::json::object& o, std::string_view key) {
  const boost::json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

class FieldReader {
 public:
  // `prefix` is the path of `o` with a trailing dot ("hello.", "mcp stream meta.").
  FieldReader(const boost::json::object& o, std::string prefix, std::string& error)
      : o_(o), prefix_(std::move(prefix)), error_(error) {}

  bool str(std::string_view key, std::string& out, bool required, size_t max = 256) {
    auto* v = o_.if_contains(key);
    if (!v) return !required || bad(key, "is required");
    if (!v->is_string()) return bad(key, "must be a string");
    if (v->as_string().size() > max) return bad(key, "is longer than " + std::to_string(max));
    out = std::string(v->as_string());
    return true;
  }
  bool boolean(std::string_view key, bool& out) {
    auto* v = o_.if_contains(key);
    if (!v) return true;
    if (!v->is_bool()) return bad(key, "must be true or false");
    out = v->as_bool();
    return true;
  }
  bool u32(std::string_view key, uint32_t& out, bool required) {
    uint64_t wide = 0;
    if (!u64(key, wide, required, 0xffffffffULL)) return false;
    if (o_.contains(key)) out = static_cast<uint32_t>(wide);
    return true;
  }
  bool u64(std::string_view key, uint64_t& out, bool required, uint64_t max) {
    auto* v = o_.if_contains(key);
    if (!v) return !required || bad(key, "is required");
    if (auto* i = v->if_int64(); i && *i >= 0 && static_cast<uint64_t>(*i) <= max) {
      out = static_cast<uint64_t>(*i);
      return true;
    }
    if (auto* u = v->if_uint64(); u && *u <= max) {
      out = *u;
      return true;
    }
    return bad(key, "must be an integer 0.." + std::to_string(max));
  }
  bool str_list(std::string_view key, std::vector<std::string>& out, size_t max_items) {
    auto* v = o_.if_contains(key);
    if (!v) return true;
    if (!v->is_array()) return bad(key, "must be an array of strings");
    if (v->as_array().size() > max_items) return bad(key, "has too many items");
    for (auto& item : v->as_array()) {
      if (!item.is_string() || item.as_string().size() > 256) {
        return bad(key, "must hold strings of at most 256 characters");
      }
      out.emplace_back(item.as_string());
    }
    return true;
  }
  const boost::json::object* obj(std::string_view key, bool required) {
    auto* v = o_.if_contains(key);
    if (!v) {
      if (required) bad(key, "is required");
      return nullptr;
    }
    if (!v->is_object()) {
      bad(key, "must be an object");
      return nullptr;
    }
    return &v->as_object();
  }
  const boost::json::array* arr(std::string_view key) {
    auto* v = o_.if_contains(key);
    if (!v) return nullptr;
    if (!v->is_array()) {
      bad(key, "must be an array");
      return nullptr;
    }
    return &v->as_array();
  }
  bool bad(std::string_view key, const std::string& why) {
    if (error_.empty()) error_ = prefix_ + std::string(key) + " " + why;
    return false;
  }
  bool ok() const { return error_.empty(); }
  const std::string& prefix() const { return prefix_; }

 private:
  const boost::json::object& o_;
  std::string prefix_;
  std::string& error_;
};

// Parses `text` as one JSON object nested at most `max_depth` deep; otherwise `error` says
// why ("not valid JSON: …", "must be a JSON object").
inline bool parse_json_object(std::string_view text, boost::json::value& v, std::string& error,
                              unsigned max_depth = 16) {
  boost::system::error_code ec;
  boost::json::parse_options opt;
  opt.max_depth = max_depth;
  v = boost::json::parse(text, ec, {}, opt);
  if (ec) {
    error = "not valid JSON: " + ec.message();
    return false;
  }
  if (!v.is_object()) {
    error = "must be a JSON object";
    return false;
  }
  return true;
}

}  // namespace airlock::proto
