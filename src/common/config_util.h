// YAML helpers shared by every program's config parser: strict key checking (unknown keys are
// rejected with their full path), durations ("500ms", "10s", "2m", "1h") and byte sizes
// ("64KiB", "4Mi", "1G", "1024"). Used only at start-up; errors are thrown as ConfigError.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "airlock/error.h"

namespace airlock {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Loads a YAML file; errors name the file, line and column.
YAML::Node load_yaml_file(const std::string& path);
YAML::Node load_yaml_string(const std::string& text, const std::string& origin);

// Throws unless `node` is a map whose keys are all in `allowed`.
void expect_keys(const YAML::Node& node, const std::string& path,
                 std::initializer_list<std::string_view> allowed);

std::string child_path(const std::string& parent, std::string_view key);

// The first line of a small file (a token, a URL) without trailing whitespace; empty when the
// file cannot be read. Never logs the content.
std::string read_first_line(const std::string& path);

// Typed scalar reads; each names `path` when the value has the wrong type.
std::string read_string(const YAML::Node& node, const std::string& path);
bool read_bool(const YAML::Node& node, const std::string& path);
uint64_t read_uint(const YAML::Node& node, const std::string& path);

Result<std::chrono::milliseconds> parse_duration(std::string_view text);
Result<uint64_t> parse_byte_size(std::string_view text);
std::chrono::milliseconds read_duration(const YAML::Node& node, const std::string& path);
uint64_t read_byte_size(const YAML::Node& node, const std::string& path);

// Shell-style glob: '*' any run, '?' one character; everything else literal.
bool glob_match(std::string_view pattern, std::string_view name);
bool any_glob_match(const std::vector<std::string>& patterns, std::string_view name);

}  // namespace airlock
