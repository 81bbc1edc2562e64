#include "common/config_util.h"

#include <gtest/gtest.h>

namespace airlock {
namespace {
using std::chrono::milliseconds;

TEST(ConfigUtil, Durations) {
  EXPECT_EQ(*parse_duration("500ms"), milliseconds(500));
  EXPECT_EQ(*parse_duration("10s"), milliseconds(10000));
  EXPECT_EQ(*parse_duration("2m"), milliseconds(120000));
  EXPECT_EQ(*parse_duration("1h"), milliseconds(3600000));
  EXPECT_FALSE(parse_duration("10"));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_FALSE(parse_duration("-1s"));
  EXPECT_FALSE(parse_duration("1.5s"));
  EXPECT_FALSE(parse_duration("99999999999999h"));
}

TEST(ConfigUtil, ByteSizes) {
  EXPECT_EQ(*parse_byte_size("1024"), 1024u);
  EXPECT_EQ(*parse_byte_size("64KiB"), 65536u);
  EXPECT_EQ(*parse_byte_size("4Mi"), 4u << 20);
  EXPECT_EQ(*parse_byte_size("4Gi"), 4ull << 30);
  EXPECT_EQ(*parse_byte_size("1G"), 1000000000u);
  EXPECT_FALSE(parse_byte_size("4 MiB"));
  EXPECT_FALSE(parse_byte_size("MiB"));
  EXPECT_FALSE(parse_byte_size("4Xi"));
}

TEST(ConfigUtil, UnknownKeysAreRejectedWithTheirPath) {
  auto node = load_yaml_string("a: 1\nnested:\n  good: 2\n  bad: 3\n", "test.yaml");
  expect_keys(node, "", {"a", "nested"});
  try {
    expect_keys(node["nested"], "nested", {"good"});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown key 'nested.bad'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("line 4"), std::string::npos) << e.what();
  }
}

TEST(ConfigUtil, MalformedYamlNamesTheOrigin) {
  try {
    load_yaml_string("a: [1, 2\n", "broken.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("broken.yaml"), std::string::npos);
  }
}

}  // namespace
}  // namespace airlock
