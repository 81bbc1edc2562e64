// The agent toolset a connected sandbox offers through /mcp: Claude Managed Agents' tool names
// and input schemas (bash, read, write, edit, glob, grep, web_fetch), so that an agent written
// for Managed Agents' self-hosted sandboxes works unchanged, plus the custom tools declared in
// sandbox.yaml. This file turns an MCP tools/call into a toolbox request — after validating the
// arguments against the tool's schema — and a toolbox reply into an MCP tool result. Plain code
// over values: no I/O; immutable after construction, shared by every session.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/json_schema.h"
#include "sandbox/toolbox_protocol.h"

namespace airlock::sandbox {

// A tool declared in sandbox.yaml (`sandbox.custom_tools`): its command runs in the session's
// sandbox as an argv list, each `{{name}}` replaced by that argument — never through a shell.
struct CustomTool {
  std::string name;
  std::string description;
  boost::json::object input_schema;
  JsonSchema schema;
  std::vector<std::string> command;
  std::chrono::milliseconds timeout{120'000};
};

// Parses and checks one custom tool from its YAML-shaped JSON (name, description,
// input_schema, command, timeout_ms); throws ConfigError naming `path` and the field.
CustomTool parse_custom_tool(const boost::json::object& spec, const std::string& path);

// Sandboxes by handle, for agents that have no MCP session to keep a sandbox in (MCP
// 2026-07-28): `sandbox_open` starts one and returns its id, every other tool takes that id
// as the optional argument `sandbox_id`, `sandbox_close` ends it. Custom tools may not use
// these names.
inline constexpr std::string_view kSandboxOpen = "sandbox_open";
inline constexpr std::string_view kSandboxClose = "sandbox_close";
inline constexpr std::string_view kSandboxId = "sandbox_id";

struct ToolsetLimits {
  // bash's timeout when the call gives none, and the most a call may ask for.
  std::chrono::milliseconds default_timeout{120'000};
  std::chrono::milliseconds max_timeout{600'000};
  // Largest argument (of any tool) accepted, in bytes; more is refused before anything runs.
  size_t max_argument = 16 * 1024 * 1024;
  // Sandboxes by handle (the connected agent): offered when set — sandbox_open and
  // sandbox_close listed, `sandbox_id` in every tool's schema — and such a sandbox ends after
  // this long without a call (session_idle_timeout). 0: not offered (the environment worker).
  std::chrono::milliseconds handle_idle_timeout{0};
};

class Toolset {
 public:
  Toolset(std::vector<CustomTool> custom, ToolsetLimits limits);

  // Every tool, as tools/list shows them: name, title, description, inputSchema. With handles,
  // sandbox_open and sandbox_close too, and `sandbox_id` among every other tool's properties.
  const boost::json::array& definitions() const { return definitions_; }

  // A tools/call's name and arguments as a toolbox request (without its id). On failure
  // `error` is what the agent is told: which tool, which argument, what was wrong.
  bool to_request(std::string_view name, const boost::json::value& arguments,
                  toolbox::Request& out, std::string& error) const;

  // The MCP tool result (content, isError) for a toolbox reply to a call of `name`.
  static boost::json::object to_result(std::string_view name, const toolbox::Reply& reply);
  // Whether sandbox.yaml declares a custom tool of this name.
  bool has_custom(std::string_view name) const { return custom_.find(name) != custom_.end(); }

  // A tool result that reports `text` as an error.
  static boost::json::object error_result(std::string_view text);
  // A tool result of one text.
  static boost::json::object text_result(std::string_view text, bool is_error = false);
  // sandbox_open's / sandbox_close's arguments against their listed schemas; on failure
  // `error` says which argument and what was wrong, as to_request does.
  bool check_handle_arguments(std::string_view name, const boost::json::value& arguments,
                              std::string& error) const;
  // sandbox_open's result for a new sandbox `id`: the id as text and as structuredContent.
  boost::json::object opened_result(const std::string& id) const;

 private:
  struct Builtin {
    toolbox::Op op;
    JsonSchema schema;
  };
  std::map<std::string, Builtin, std::less<>> builtins_;
  std::map<std::string, CustomTool, std::less<>> custom_;
  std::map<std::string, JsonSchema, std::less<>> handle_schemas_;  // sandbox_open, _close
  ToolsetLimits limits_;
  boost::json::array definitions_;
};

}  // namespace airlock::sandbox
