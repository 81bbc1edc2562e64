#include "sandbox/json_schema.h"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <vector>

namespace airlock::sandbox {
namespace json = boost::json;

namespace {

enum TypeBit : unsigned {
  kNull = 1, kBoolean = 2, kObject = 4, kArray = 8, kNumber = 16, kString = 32, kInteger = 64
};

const std::map<std::string, unsigned>& type_names() {
  static const std::map<std::string, unsigned> names = {
      {"null", kNull},     {"boolean", kBoolean}, {"object", kObject}, {"array", kArray},
      {"number", kNumber}, {"string", kString},   {"integer", kInteger}};
  return names;
}

bool is_number(const json::value& v) { return v.is_int64() || v.is_uint64() || v.is_double(); }

double to_double(const json::value& v) {
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  if (v.is_uint64()) return static_cast<double>(v.as_uint64());
  return v.as_double();
}

bool is_integer(const json::value& v) {
  if (v.is_int64() || v.is_uint64()) return true;
  return v.is_double() && std::isfinite(v.as_double()) && std::floor(v.as_double()) == v.as_double();
}

const char* kind_of(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::object: return "an object";
    case json::kind::array: return "an array";
    case json::kind::string: return "a string";
    default: return is_integer(v) ? "an integer" : "a number";
  }
}

size_t code_points(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

}  // namespace

bool json_equal(const json::value& a, const json::value& b) {
  if (is_number(a) && is_number(b)) {
    if ((a.is_int64() || a.is_uint64()) && (b.is_int64() || b.is_uint64())) {
      if (a.is_int64() && b.is_int64()) return a.as_int64() == b.as_int64();
      if (a.is_uint64() && b.is_uint64()) return a.as_uint64() == b.as_uint64();
      const auto& s = a.is_int64() ? a : b;
      const auto& u = a.is_int64() ? b : a;
      return s.as_int64() >= 0 && static_cast<uint64_t>(s.as_int64()) == u.as_uint64();
    }
    return to_double(a) == to_double(b);
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const auto &x = a.as_array(), &y = b.as_array();
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!json_equal(x[i], y[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    const auto &x = a.as_object(), &y = b.as_object();
    if (x.size() != y.size()) return false;
    for (const auto& kv : x) {
      auto* other = y.if_contains(kv.key());
      if (!other || !json_equal(kv.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

struct JsonSchema::Node {
  std::optional<bool> always;  // a boolean schema
  unsigned types = 0;          // 0: any
  std::optional<json::array> enum_values;
  std::optional<json::value> const_value;
  std::map<std::string, std::shared_ptr<const Node>> properties;
  std::vector<std::string> required;
  std::shared_ptr<const Node> additional;  // null: anything
  std::shared_ptr<const Node> items;
  std::optional<uint64_t> min_properties, max_properties, min_items, max_items, min_length,
      max_length;
  bool unique_items = false;
  std::optional<double> minimum, maximum, exclusive_minimum, exclusive_maximum, multiple_of;

  bool check(const json::value& v, const std::string& where, std::string& error) const;
};

namespace {

const std::set<std::string>& supported() {
  static const std::set<std::string> keys = {
      "type", "enum", "const", "properties", "required", "additionalProperties",
      "minProperties", "maxProperties", "items", "minItems", "maxItems", "uniqueItems",
      "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
      "multipleOf", "title", "description", "default", "examples", "$schema", "$id",
      "$comment", "readOnly", "writeOnly", "deprecated", "format"};
  return keys;
}

std::string supported_list() {
  std::string out;
  for (const auto& k : supported()) out += (out.empty() ? "" : ", ") + k;
  return out;
}

std::shared_ptr<const JsonSchema::Node> compile_node(const json::value& s, const std::string& path,
                                                     std::string& error, int depth) {
  auto fail = [&](const std::string& why) {
    if (error.empty()) error = (path.empty() ? "schema" : path) + ": " + why;
    return nullptr;
  };
  if (depth > 32) return fail("nested more than 32 deep");
  auto node = std::make_shared<JsonSchema::Node>();
  if (s.is_bool()) {
    node->always = s.as_bool();
    return node;
  }
  if (!s.is_object()) return fail("a schema must be an object or a boolean");
  const auto& o = s.as_object();
  for (const auto& kv : o) {
    if (!supported().count(std::string(kv.key()))) {
      return fail("keyword '" + std::string(kv.key()) + "' is not supported (supported: " +
                  supported_list() + ")");
    }
  }
  auto count = [&](const char* key, std::optional<uint64_t>& out) -> bool {
    auto* v = o.if_contains(key);
    if (!v) return true;
    if (!is_integer(*v) || to_double(*v) < 0) {
      fail(std::string(key) + " must be a non-negative integer");
      return false;
    }
    out = static_cast<uint64_t>(to_double(*v));
    return true;
  };
  auto number = [&](const char* key, std::optional<double>& out) -> bool {
    auto* v = o.if_contains(key);
    if (!v) return true;
    if (!is_number(*v)) {
      fail(std::string(key) + " must be a number");
      return false;
    }
    out = to_double(*v);
    return true;
  };
  if (auto* t = o.if_contains("type")) {
    auto add = [&](const json::value& name) -> bool {
      if (!name.is_string() || !type_names().count(std::string(name.as_string()))) {
        fail("type must name null, boolean, object, array, number, string or integer");
        return false;
      }
      node->types |= type_names().at(std::string(name.as_string()));
      return true;
    };
    if (t->is_array()) {
      for (const auto& n : t->as_array()) {
        if (!add(n)) return nullptr;
      }
    } else if (!add(*t)) {
      return nullptr;
    }
  }
  if (auto* e = o.if_contains("enum")) {
    if (!e->is_array()) return fail("enum must be an array");
    node->enum_values = e->as_array();
  }
  if (auto* c = o.if_contains("const")) node->const_value = *c;
  if (auto* p = o.if_contains("properties")) {
    if (!p->is_object()) return fail("properties must be an object");
    for (const auto& kv : p->as_object()) {
      auto child = compile_node(kv.value(), join(join(path, "properties"), kv.key()), error,
                                depth + 1);
      if (!child) return nullptr;
      node->properties[std::string(kv.key())] = child;
    }
  }
  if (auto* r = o.if_contains("required")) {
    if (!r->is_array()) return fail("required must be an array of property names");
    for (const auto& n : r->as_array()) {
      if (!n.is_string()) return fail("required must be an array of property names");
      node->required.emplace_back(n.as_string());
    }
  }
  if (auto* a = o.if_contains("additionalProperties")) {
    node->additional = compile_node(*a, join(path, "additionalProperties"), error, depth + 1);
    if (!node->additional) return nullptr;
  }
  if (auto* i = o.if_contains("items")) {
    if (i->is_array()) {
      return fail("items as a list of schemas (tuple validation) is not supported; give one "
                  "schema for every item");
    }
    node->items = compile_node(*i, join(path, "items"), error, depth + 1);
    if (!node->items) return nullptr;
  }
  if (auto* u = o.if_contains("uniqueItems")) {
    if (!u->is_bool()) return fail("uniqueItems must be true or false");
    node->unique_items = u->as_bool();
  }
  if (!count("minProperties", node->min_properties) ||
      !count("maxProperties", node->max_properties) || !count("minItems", node->min_items) ||
      !count("maxItems", node->max_items) || !count("minLength", node->min_length) ||
      !count("maxLength", node->max_length) || !number("minimum", node->minimum) ||
      !number("maximum", node->maximum) ||
      !number("exclusiveMinimum", node->exclusive_minimum) ||
      !number("exclusiveMaximum", node->exclusive_maximum) ||
      !number("multipleOf", node->multiple_of)) {
    return nullptr;
  }
  if (node->multiple_of && *node->multiple_of <= 0) return fail("multipleOf must be above 0");
  return node;
}

}  // namespace

bool JsonSchema::Node::check(const json::value& v, const std::string& where,
                             std::string& error) const {
  const std::string at = where.empty() ? "the arguments" : where;
  auto fail = [&](const std::string& why) {
    error = at + ": " + why;
    return false;
  };
  if (always) return *always || fail("no value is allowed here");
  if (types) {
    unsigned have = 0;
    switch (v.kind()) {
      case json::kind::null: have = kNull; break;
      case json::kind::bool_: have = kBoolean; break;
      case json::kind::object: have = kObject; break;
      case json::kind::array: have = kArray; break;
      case json::kind::string: have = kString; break;
      default: have = kNumber | (is_integer(v) ? kInteger : 0u); break;
    }
    if (!(types & have)) {
      std::string want;
      for (const auto& [name, bit] : type_names()) {
        if (types & bit) want += (want.empty() ? "" : " or ") + name;
      }
      return fail("must be " + want + " (got " + kind_of(v) + ")");
    }
  }
  if (enum_values) {
    bool found = false;
    for (const auto& e : *enum_values) found = found || json_equal(e, v);
    if (!found) return fail("must be one of " + json::serialize(*enum_values));
  }
  if (const_value && !json_equal(*const_value, v)) {
    return fail("must be " + json::serialize(*const_value));
  }
  if (v.is_object()) {
    const auto& o = v.as_object();
    for (const auto& name : required) {
      if (!o.contains(name)) return fail("'" + name + "' is required");
    }
    if (min_properties && o.size() < *min_properties) {
      return fail("needs at least " + std::to_string(*min_properties) + " properties");
    }
    if (max_properties && o.size() > *max_properties) {
      return fail("allows at most " + std::to_string(*max_properties) + " properties");
    }
    for (const auto& kv : o) {
      const std::string child = join(where, kv.key());
      auto p = properties.find(std::string(kv.key()));
      if (p != properties.end()) {
        if (!p->second->check(kv.value(), child, error)) return false;
      } else if (additional) {
        if (additional->always == false) {
          return fail("'" + std::string(kv.key()) + "' is not an allowed property");
        }
        if (!additional->check(kv.value(), child, error)) return false;
      }
    }
  }
  if (v.is_array()) {
    const auto& a = v.as_array();
    if (min_items && a.size() < *min_items) {
      return fail("needs at least " + std::to_string(*min_items) + " items");
    }
    if (max_items && a.size() > *max_items) {
      return fail("allows at most " + std::to_string(*max_items) + " items");
    }
    if (unique_items) {
      for (size_t i = 0; i < a.size(); ++i) {
        for (size_t j = i + 1; j < a.size(); ++j) {
          if (json_equal(a[i], a[j])) {
            return fail("items " + std::to_string(i) + " and " + std::to_string(j) +
                        " are equal; they must be unique");
          }
        }
      }
    }
    if (items) {
      for (size_t i = 0; i < a.size(); ++i) {
        if (!items->check(a[i], where + "[" + std::to_string(i) + "]", error)) return false;
      }
    }
  }
  if (v.is_string()) {
    const size_t n = code_points(v.as_string());
    if (min_length && n < *min_length) {
      return fail("must be at least " + std::to_string(*min_length) + " characters long");
    }
    if (max_length && n > *max_length) {
      return fail("must be at most " + std::to_string(*max_length) + " characters long");
    }
  }
  if (is_number(v)) {
    const double d = to_double(v);
    auto num = [](double x) {
      char buf[64];
      if (std::floor(x) == x && std::fabs(x) < 1e15) {
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(x));
      } else {
        std::snprintf(buf, sizeof buf, "%.17g", x);
      }
      return std::string(buf);
    };
    if (minimum && d < *minimum) return fail("must be at least " + num(*minimum));
    if (maximum && d > *maximum) return fail("must be at most " + num(*maximum));
    if (exclusive_minimum && d <= *exclusive_minimum) {
      return fail("must be above " + num(*exclusive_minimum));
    }
    if (exclusive_maximum && d >= *exclusive_maximum) {
      return fail("must be below " + num(*exclusive_maximum));
    }
    if (multiple_of) {
      const double q = d / *multiple_of;
      if (!std::isfinite(q) || std::fabs(q - std::round(q)) > 1e-9 * std::max(1.0, std::fabs(q))) {
        return fail("must be a multiple of " + num(*multiple_of));
      }
    }
  }
  return true;
}

std::optional<JsonSchema> JsonSchema::compile(const json::value& schema, std::string& error) {
  error.clear();
  auto root = compile_node(schema, "", error, 0);
  if (!root) return std::nullopt;
  JsonSchema s;
  s.root_ = std::move(root);
  return s;
}

bool JsonSchema::validate(const json::value& instance, std::string& error) const {
  error.clear();
  return root_->check(instance, "", error);
}

}  // namespace airlock::sandbox
