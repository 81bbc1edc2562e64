#include "common/mcp_revision.h"

#include <boost/algorithm/string/case_conv.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <set>

#include "common/encoding.h"

namespace airlock::mcp {
namespace json = boost::json;
namespace {
constexpr std::string_view kOpen = "=?base64?", kClose = "?=";

// RFC 9110 tchar.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (const unsigned char c : s) {
    if (!std::isalnum(c) &&
        std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

struct Walk {
  const json::value& arguments;
  std::vector<HeaderParam>& out;
  std::string& error;
  std::set<std::string> seen;  // lower-cased

  bool fail(const std::vector<std::string>& path, const std::string& why) {
    std::string where = "inputSchema";
    for (const auto& p : path) where += ".properties." + p;
    error = where + ": x-mcp-header " + why;
    return false;
  }
  // The argument at `path`, if the call gives one.
  const json::value* argument(const std::vector<std::string>& path) const {
    const json::value* v = &arguments;
    for (const auto& key : path) {
      if (!v->is_object()) return nullptr;
      v = v->as_object().if_contains(key);
      if (!v) return nullptr;
    }
    return v;
  }
  // `reachable`: `schema` is the root or reached through properties only.
  bool visit(const json::value& schema, bool reachable, std::vector<std::string>& path) {
    if (schema.is_array()) {
      for (const auto& item : schema.as_array()) {
        if (!visit(item, false, path)) return false;
      }
      return true;
    }
    if (!schema.is_object()) return true;
    const json::object& o = schema.as_object();
    if (const json::value* h = o.if_contains("x-mcp-header")) {
      if (!reachable || path.empty()) {
        return fail(path, "is only allowed on a property reached through properties alone");
      }
      if (!h->is_string() || !is_token(h->as_string())) {
        return fail(path, "must be a non-empty HTTP token");
      }
      std::string name(h->as_string());
      if (!seen.insert(boost::algorithm::to_lower_copy(name)).second) {
        return fail(path, "'" + name + "' is used twice");
      }
      const json::value* type = o.if_contains("type");
      if (!type || !type->is_string() ||
          (type->as_string() != "string" && type->as_string() != "integer" &&
           type->as_string() != "boolean")) {
        return fail(path, "is only allowed on a string, integer or boolean property");
      }
      HeaderParam p{std::move(name), std::nullopt};
      if (const json::value* v = argument(path)) {
        if (v->is_string()) {
          p.value = std::string(v->as_string());
        } else if (v->is_bool()) {
          p.value = v->as_bool() ? "true" : "false";
        } else {
          p.value = json::serialize(*v);
        }
      }
      out.push_back(std::move(p));
    }
    for (const auto& [key, child] : o) {
      if (key == "properties" && child.is_object() && reachable) {
        for (const auto& [name, sub] : child.as_object()) {
          path.emplace_back(name);
          const bool ok = visit(sub, true, path);
          path.pop_back();
          if (!ok) return false;
        }
      } else if (key != "x-mcp-header" && !visit(child, false, path)) {
        return false;
      }
    }
    return true;
  }
};
}  // namespace

bool mentions_header_params(const json::value& schema) {
  if (schema.is_array()) {
    for (const auto& item : schema.as_array()) {
      if (mentions_header_params(item)) return true;
    }
  } else if (schema.is_object()) {
    for (const auto& [key, value] : schema.as_object()) {
      if (key == "x-mcp-header" || mentions_header_params(value)) return true;
    }
  }
  return false;
}

bool header_params(const json::object& input_schema, const json::value& arguments,
                   std::vector<HeaderParam>& out, std::string& error) {
  out.clear();
  std::vector<std::string> path;
  Walk w{arguments, out, error, {}};
  return w.visit(input_schema, true, path);
}

std::string_view name_field(std::string_view method) {
  if (method == "tools/call" || method == "prompts/get") return "name";
  if (method == "resources/read") return "uri";
  return {};
}

std::string encode_header_value(std::string_view value) {
  bool plain = value.empty() || (value.front() != ' ' && value.back() != ' ');
  for (const char c : value) plain = plain && c >= 0x20 && c < 0x7f;
  // A plain value that looks like the sentinel would be decoded on the other side.
  if (plain && !(value.starts_with(kOpen) && value.ends_with(kClose))) return std::string(value);
  return std::string(kOpen) + base64(value, false, true) + std::string(kClose);
}

std::optional<std::string> decode_header_value(std::string_view value) {
  if (!value.starts_with(kOpen) || !value.ends_with(kClose) ||
      value.size() < kOpen.size() + kClose.size()) {
    return std::string(value);
  }
  return from_base64(value.substr(kOpen.size(), value.size() - kOpen.size() - kClose.size()));
}

}  // namespace airlock::mcp
