#include "sandbox/json_schema.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fstream>
#include <sstream>

namespace airlock::sandbox {
namespace {
namespace json = boost::json;

// Debian's json-schema-test-suite (scripts/setup installs it).
constexpr const char* kSuite = "/usr/share/json-schema-test-suite/tests/draft7/";

json::value load(const std::string& name) {
  std::ifstream in(std::string(kSuite) + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

// Every group of the suite's file for a supported keyword: a schema that compiles must give
// every test's expected outcome; one that does not must have been refused for a keyword
// outside the subset (never for anything else).
TEST(JsonSchema, PassesTheTestSuiteForEverySupportedKeyword) {
  size_t compiled = 0, refused = 0, cases = 0;
  for (const char* file :
       {"type.json", "enum.json", "const.json", "properties.json", "required.json",
        "additionalProperties.json", "minProperties.json", "maxProperties.json", "items.json",
        "minItems.json", "maxItems.json", "uniqueItems.json", "minLength.json", "maxLength.json",
        "minimum.json", "maximum.json", "exclusiveMinimum.json", "exclusiveMaximum.json",
        "multipleOf.json", "boolean_schema.json"}) {
    SCOPED_TRACE(file);
    const json::value groups = load(file);
    ASSERT_TRUE(groups.is_array()) << "cannot read " << kSuite << file;
    for (const auto& g : groups.as_array()) {
      const auto& group = g.as_object();
      const std::string what = std::string(group.at("description").as_string());
      std::string error;
      auto schema = JsonSchema::compile(group.at("schema"), error);
      if (!schema) {
        ++refused;
        EXPECT_TRUE(error.find("is not supported") != std::string::npos)
            << what << ": refused for another reason: " << error;
        continue;
      }
      ++compiled;
      for (const auto& t : group.at("tests").as_array()) {
        const auto& test = t.as_object();
        ++cases;
        const bool want = test.at("valid").as_bool();
        EXPECT_EQ(schema->validate(test.at("data"), error), want)
            << what << " / " << test.at("description").as_string() << ": "
            << json::serialize(test.at("data")) << (want ? " refused: " + error : " accepted");
      }
    }
  }
  // Most of each file is in the subset; the groups refused use keywords outside it (pattern,
  // patternProperties, $ref, tuple items, …). Counts as of the Debian package's suite.
  EXPECT_GE(compiled, 40u);
  EXPECT_GE(cases, 190u);
  EXPECT_LE(refused, compiled / 2) << refused << " groups refused";
}

TEST(JsonSchema, RefusesKeywordsOutsideTheSubsetNamingWhere) {
  std::string error;
  EXPECT_FALSE(JsonSchema::compile(
      json::parse(R"({"type":"object","properties":{"id":{"type":"string","pattern":"^a"}}})"),
      error));
  EXPECT_NE(error.find("properties.id: keyword 'pattern' is not supported"), std::string::npos)
      << error;
  EXPECT_FALSE(JsonSchema::compile(json::parse(R"({"oneOf":[{"type":"string"}]})"), error));
  EXPECT_NE(error.find("'oneOf'"), std::string::npos) << error;
  EXPECT_FALSE(JsonSchema::compile(json::parse(R"({"type":"strung"})"), error));
  EXPECT_NE(error.find("type must name"), std::string::npos) << error;
  EXPECT_FALSE(JsonSchema::compile(json::parse("7"), error));
}

TEST(JsonSchema, ErrorsNameTheArgumentAndTheRule) {
  std::string error;
  auto s = JsonSchema::compile(json::parse(R"({"type":"object","required":["id"],
      "additionalProperties":false,
      "properties":{"id":{"type":"integer","minimum":1},
                    "tags":{"type":"array","items":{"type":"string","maxLength":3}}}})"),
                               error);
  ASSERT_TRUE(s) << error;
  EXPECT_TRUE(s->validate(json::parse(R"({"id":3,"tags":["a"]})"), error)) << error;
  EXPECT_FALSE(s->validate(json::parse(R"({})"), error));
  EXPECT_EQ(error, "the arguments: 'id' is required");
  EXPECT_FALSE(s->validate(json::parse(R"({"id":"3"})"), error));
  EXPECT_EQ(error, "id: must be integer (got a string)");
  EXPECT_FALSE(s->validate(json::parse(R"({"id":0})"), error));
  EXPECT_EQ(error, "id: must be at least 1");
  EXPECT_FALSE(s->validate(json::parse(R"({"id":1,"tags":["abcd"]})"), error));
  EXPECT_EQ(error, "tags[0]: must be at most 3 characters long");
  EXPECT_FALSE(s->validate(json::parse(R"({"id":1,"colour":"red"})"), error));
  EXPECT_EQ(error, "the arguments: 'colour' is not an allowed property");
}

}  // namespace
}  // namespace airlock::sandbox
