#include "common/config_util.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>

namespace airlock {
namespace {

std::string where(const YAML::Node& node) {
  const auto m = node.Mark();
  if (m.line < 0) return "";
  return " (line " + std::to_string(m.line + 1) + ", column " + std::to_string(m.column + 1) + ")";
}

Result<uint64_t> parse_number_prefix(std::string_view text, std::string_view& suffix) {
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr == text.data()) return Errc::kInvalidArgument;
  suffix = text.substr(ptr - text.data());
  return value;
}

}  // namespace

YAML::Node load_yaml_file(const std::string& path) {
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ConfigError("cannot read config file " + path);
  } catch (const YAML::Exception& e) {
    throw ConfigError(path + ": " + e.what());
  }
}

YAML::Node load_yaml_string(const std::string& text, const std::string& origin) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(origin + ": " + e.what());
  }
}

std::string read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

std::string child_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

void expect_keys(const YAML::Node& node, const std::string& path,
                 std::initializer_list<std::string_view> allowed) {
  if (!node.IsMap()) {
    throw ConfigError((path.empty() ? std::string("the document") : path) +
                      " must be a mapping" + where(node));
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    bool known = false;
    for (auto a : allowed) known = known || key == a;
    if (!known) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      throw ConfigError("unknown key '" + child_path(path, key) + "'" + where(kv.first) +
                        "; allowed here: " + list);
    }
  }
}

std::string read_string(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) throw ConfigError(path + " must be a string" + where(node));
  return node.as<std::string>();
}

bool read_bool(const YAML::Node& node, const std::string& path) {
  bool v = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, v)) {
    throw ConfigError(path + " must be true or false" + where(node));
  }
  return v;
}

uint64_t read_uint(const YAML::Node& node, const std::string& path) {
  const std::string s = node.IsScalar() ? node.as<std::string>() : "";
  std::string_view rest;
  auto v = parse_number_prefix(s, rest);
  if (!v || !rest.empty()) throw ConfigError(path + " must be a whole number" + where(node));
  return *v;
}

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::string_view unit;
  auto v = parse_number_prefix(text, unit);
  if (!v) return v.error();
  uint64_t scale = 0;
  if (unit == "ms") scale = 1;
  else if (unit == "s") scale = 1000;
  else if (unit == "m") scale = 60'000;
  else if (unit == "h") scale = 3'600'000;
  else return Errc::kInvalidArgument;
  if (*v > (uint64_t{1} << 40) / scale) return Errc::kInvalidArgument;
  return std::chrono::milliseconds(*v * scale);
}

Result<uint64_t> parse_byte_size(std::string_view text) {
  std::string_view unit;
  auto v = parse_number_prefix(text, unit);
  if (!v) return v.error();
  uint64_t scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "k" || unit == "K" || unit == "KB") scale = 1000;
  else if (unit == "Ki" || unit == "KiB") scale = 1024;
  else if (unit == "M" || unit == "MB") scale = 1000'000;
  else if (unit == "Mi" || unit == "MiB") scale = 1024 * 1024;
  else if (unit == "G" || unit == "GB") scale = 1000'000'000;
  else if (unit == "Gi" || unit == "GiB") scale = uint64_t{1} << 30;
  else return Errc::kInvalidArgument;
  if (*v > (uint64_t{1} << 50) / scale) return Errc::kInvalidArgument;
  return *v * scale;
}

std::chrono::milliseconds read_duration(const YAML::Node& node, const std::string& path) {
  auto d = parse_duration(node.IsScalar() ? node.as<std::string>() : "");
  if (!d) {
    throw ConfigError(path + " must be a duration such as 500ms, 10s, 2m or 1h" + where(node));
  }
  return *d;
}

uint64_t read_byte_size(const YAML::Node& node, const std::string& path) {
  auto d = parse_byte_size(node.IsScalar() ? node.as<std::string>() : "");
  if (!d) throw ConfigError(path + " must be a size such as 65536, 64KiB or 4Mi" + where(node));
  return *d;
}

bool glob_match(std::string_view p, std::string_view s) {
  size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++pi;
      ++si;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool any_glob_match(const std::vector<std::string>& patterns, std::string_view name) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return glob_match(p, name); });
}

}  // namespace airlock
