#include "sandbox/toolset.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "common/config_util.h"

namespace airlock::sandbox {
namespace {
namespace json = boost::json;

Toolset toolset(std::vector<CustomTool> custom = {}) { return Toolset(std::move(custom), {}); }

TEST(Toolset, OffersManagedAgentsToolNamesAndSchemas) {
  auto t = toolset();
  std::vector<std::string> names;
  for (const auto& d : t.definitions()) names.emplace_back(d.as_object().at("name").as_string());
  EXPECT_EQ(names, (std::vector<std::string>{"bash", "read", "write", "edit", "glob", "grep",
                                             "web_fetch"}));
  const auto& bash = t.definitions()[0].as_object().at("inputSchema").as_object();
  EXPECT_EQ(json::serialize(bash.at("required")), R"(["command"])");
  EXPECT_TRUE(bash.at("properties").as_object().contains("timeout_ms"));
  EXPECT_TRUE(bash.at("properties").as_object().contains("restart"));
  const auto& edit = t.definitions()[3].as_object().at("inputSchema").as_object();
  EXPECT_EQ(json::serialize(edit.at("required")), R"(["file_path","old_string","new_string"])");
}

TEST(Toolset, SandboxesByHandleAreListedOnlyWhereOffered) {
  ToolsetLimits limits;
  limits.handle_idle_timeout = std::chrono::minutes(30);
  CustomTool custom = parse_custom_tool(
      json::parse(R"({"name":"report","input_schema":{"type":"object","additionalProperties":false,
                      "properties":{"q":{"type":"string"}}},"command":["/r","{{q}}"]})")
          .as_object(),
      "sandbox.custom_tools[0]");
  Toolset t({custom}, limits);
  std::vector<std::string> names;
  for (const auto& d : t.definitions()) {
    const auto& tool = d.as_object();
    names.emplace_back(tool.at("name").as_string());
    if (names.back().starts_with("sandbox_")) continue;
    const auto& schema = tool.at("inputSchema").as_object();
    EXPECT_EQ(schema.at("properties").at("sandbox_id").at("type"), "string") << names.back();
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"bash", "read", "write", "edit", "glob", "grep", "web_fetch",
                                      "report", "sandbox_open", "sandbox_close"}));
  // The listing changes; what a call is validated against does not (sandbox_id is taken off
  // before), so the custom tool's additionalProperties: false still holds for the rest.
  toolbox::Request q;
  std::string error;
  EXPECT_FALSE(t.to_request("report", json::parse(R"({"q":"a","sandbox_id":"x"})"), q, error));
  EXPECT_TRUE(t.to_request("report", json::parse(R"({"q":"a"})"), q, error)) << error;
  EXPECT_NE(json::serialize(t.definitions()[8]).find("30 minutes"), std::string::npos);
  // Their arguments are checked like any tool's, against what is listed.
  EXPECT_TRUE(t.check_handle_arguments("sandbox_open", json::parse("{}"), error)) << error;
  EXPECT_FALSE(t.check_handle_arguments("sandbox_open", json::parse(R"({"x":1})"), error));
  EXPECT_NE(error.find("Invalid arguments for tool 'sandbox_open'"), std::string::npos) << error;
  EXPECT_FALSE(t.check_handle_arguments("sandbox_close", json::parse("{}"), error));
  EXPECT_NE(error.find("sandbox_id"), std::string::npos) << error;
  EXPECT_FALSE(
      t.check_handle_arguments("sandbox_close", json::parse(R"({"sandbox_id":7})"), error));
  EXPECT_TRUE(
      t.check_handle_arguments("sandbox_close", json::parse(R"({"sandbox_id":"s"})"), error));
  const auto opened = t.opened_result("sbx_1");
  EXPECT_EQ(opened.at("structuredContent").at("sandbox_id"), "sbx_1");
  EXPECT_EQ(opened.at("isError"), false);
}

TEST(Toolset, ArgumentsBecomeToolboxRequests) {
  auto t = toolset();
  toolbox::Request q;
  std::string error;
  ASSERT_TRUE(t.to_request("bash", json::parse(R"({"command":"cd /tmp"})"), q, error)) << error;
  EXPECT_EQ(q.op, toolbox::Op::kBash);
  EXPECT_EQ(q.timeout_ms, 120000u);
  ASSERT_TRUE(t.to_request("read", json::parse(R"({"file_path":"a","view_range":[2,5]})"), q,
                           error))
      << error;
  EXPECT_EQ(q.view_range->first, 2);
  ASSERT_TRUE(t.to_request("edit", json::parse(R"({"file_path":"a","old_string":"x",
      "new_string":"y","replace_all":true})"), q, error)) << error;
  EXPECT_TRUE(q.replace_all);
}

TEST(Toolset, BadInputIsAClearError) {
  auto t = toolset();
  toolbox::Request q;
  std::string error;
  EXPECT_FALSE(t.to_request("bash", json::parse(R"({})"), q, error));
  EXPECT_EQ(error, "Invalid arguments for tool 'bash': the arguments: 'command' is required");
  EXPECT_FALSE(t.to_request("bash", json::parse(R"({"command":5})"), q, error));
  EXPECT_EQ(error, "Invalid arguments for tool 'bash': command: must be string (got an integer)");
  EXPECT_FALSE(t.to_request("bash", json::parse(R"({"command":"x","timeout_ms":99999999})"), q,
                            error));
  EXPECT_NE(error.find("above this sandbox's limit"), std::string::npos) << error;
  EXPECT_FALSE(t.to_request("read", json::parse(R"({"file_path":"a","view_range":[1]})"), q, error));
  EXPECT_NE(error.find("view_range: needs at least 2 items"), std::string::npos) << error;
  EXPECT_FALSE(t.to_request("nope", json::parse("{}"), q, error));
  EXPECT_EQ(error, "Unknown tool 'nope'");
  EXPECT_FALSE(t.to_request("write", json::parse(R"({"file_path":"a","content":"b","mode":1})"),
                            q, error));
  EXPECT_NE(error.find("'mode' is not an allowed property"), std::string::npos) << error;
}

TEST(Toolset, CustomToolsSubstituteArgumentsIntoArgvWithoutAShell) {
  CustomTool tool = parse_custom_tool(
      json::parse(R"({"name":"report","description":"Sales report",
        "input_schema":{"type":"object","properties":{"quarter":{"type":"string","maxLength":20},
                        "limit":{"type":"integer"}},"required":["quarter"]},
        "command":["/usr/bin/report","--quarter={{quarter}}","{{limit}}"]})")
          .as_object(),
      "sandbox.custom_tools[0]");
  auto t = toolset({tool});
  toolbox::Request q;
  std::string error;
  ASSERT_TRUE(t.to_request("report", json::parse(R"({"quarter":"Q1; rm -rf /","limit":5})"), q,
                           error))
      << error;
  EXPECT_EQ(q.op, toolbox::Op::kExec);
  EXPECT_EQ(q.argv, (std::vector<std::string>{"/usr/bin/report", "--quarter=Q1; rm -rf /", "5"}));
  EXPECT_FALSE(t.to_request("report", json::parse(R"({"limit":5})"), q, error));
  EXPECT_NE(error.find("'quarter' is required"), std::string::npos) << error;
}

TEST(Toolset, CustomToolsWithUnsupportedSchemasOrUnknownPlaceholdersAreRefusedAtLoad) {
  auto refused = [](const char* spec, const char* want) {
    try {
      parse_custom_tool(json::parse(spec).as_object(), "sandbox.custom_tools[0]");
      ADD_FAILURE() << "accepted " << spec;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  refused(R"({"name":"r","command":["x"],"input_schema":{"type":"object",
             "properties":{"q":{"type":"string","pattern":"^Q"}}}})",
          "sandbox.custom_tools[0].input_schema: properties.q: keyword 'pattern' is not supported");
  refused(R"({"name":"r","command":["x","{{who}}"],"input_schema":{"type":"object"}})",
          "{{who}} is not a property of input_schema");
  refused(R"({"name":"bash","command":["x"]})", "is a tool of the agent toolset already");
  refused(R"({"name":"sandbox_open","command":["x"]})", "'sandbox_open' is reserved");
  refused(R"({"name":"r","command":["x"],"input_schema":{"type":"object",
             "properties":{"sandbox_id":{"type":"string"}}}})",
          "input_schema.properties.sandbox_id is reserved");
  refused(R"({"name":"r","command":[]})", "command must be a non-empty list");
}

TEST(Toolset, OutputIsMadeValidUtf8) {
  EXPECT_EQ(toolbox::valid_utf8("ok \xC3\xA9"), "ok \xC3\xA9");
  EXPECT_EQ(toolbox::valid_utf8("bad \xFF end"), "bad \xEF\xBF\xBD end");
  EXPECT_EQ(toolbox::valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(toolbox::valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  toolbox::Reply r;
  r.text = "";
  r.exit_code = 0;
  const auto result = Toolset::to_result("bash", r);
  EXPECT_EQ(result.at("content").as_array()[0].as_object().at("text").as_string(),
            "[exit status 0]");
}

}  // namespace
}  // namespace airlock::sandbox
