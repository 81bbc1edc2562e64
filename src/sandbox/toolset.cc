#include "sandbox/toolset.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "common/config_util.h"

namespace airlock::sandbox {
namespace json = boost::json;
using toolbox::Op;

namespace {

struct BuiltinSpec {
  const char* name;
  const char* title;
  const char* description;
  Op op;
  const char* schema;
};

// Names and input schemas of Claude Managed Agents' agent toolset.
const BuiltinSpec kBuiltins[] = {
    {"bash", "Bash",
     "Run a bash command in this session's persistent shell, inside the sandbox. The working "
     "directory and exported variables carry over between calls. stdout and stderr are returned "
     "together (at most 100 KiB) with the exit status. restart: true starts a fresh shell.",
     Op::kBash,
     R"({"type":"object","properties":{
         "command":{"type":"string","description":"The command to run."},
         "restart":{"type":"boolean","description":"Start a fresh shell first."},
         "timeout_ms":{"type":"integer","minimum":1,
                       "description":"Kill the command after this many milliseconds (default 120000)."}},
         "required":["command"],"additionalProperties":false})"},
    {"read", "Read",
     "Read a file from the sandbox filesystem, with line numbers (at most 256 KiB). view_range "
     "[start, end] reads those lines (1-based; end -1 for the rest).",
     Op::kRead,
     R"({"type":"object","properties":{
         "file_path":{"type":"string","minLength":1,"description":"Absolute, or relative to /workspace."},
         "view_range":{"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":2,
                       "description":"First and last line to read, 1-based; -1 as last: to the end."}},
         "required":["file_path"],"additionalProperties":false})"},
    {"write", "Write",
     "Write a file to the sandbox filesystem, replacing it if it exists; missing directories "
     "are made.",
     Op::kWrite,
     R"({"type":"object","properties":{
         "file_path":{"type":"string","minLength":1},"content":{"type":"string"}},
         "required":["file_path","content"],"additionalProperties":false})"},
    {"edit", "Edit",
     "Replace old_string with new_string in a file. old_string must match exactly once unless "
     "replace_all is true.",
     Op::kEdit,
     R"({"type":"object","properties":{
         "file_path":{"type":"string","minLength":1},"old_string":{"type":"string","minLength":1},
         "new_string":{"type":"string"},"replace_all":{"type":"boolean"}},
         "required":["file_path","old_string","new_string"],"additionalProperties":false})"},
    {"glob", "Glob",
     "Find files by glob pattern ('**' matches any number of directories), newest first, at "
     "most 200.",
     Op::kGlob,
     R"({"type":"object","properties":{
         "pattern":{"type":"string","minLength":1},
         "path":{"type":"string","description":"Directory to search (default /workspace)."}},
         "required":["pattern"],"additionalProperties":false})"},
    {"grep", "Grep",
     "Search file contents with a regular expression (POSIX extended); matching lines as "
     "path:line:text, at most 100 KiB.",
     Op::kGrep,
     R"({"type":"object","properties":{
         "pattern":{"type":"string","minLength":1},
         "path":{"type":"string","description":"File or directory to search (default /workspace)."}},
         "required":["pattern"],"additionalProperties":false})"},
    {"web_fetch", "Web fetch",
     "Fetch a URL (http or https) through the sandbox's egress proxy: only hosts the sandbox's "
     "allowed_outbound lists can be reached.",
     Op::kFetch,
     R"({"type":"object","properties":{"url":{"type":"string","minLength":1}},
         "required":["url"],"additionalProperties":false})"},
};

std::string str(const json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

bool is_tool_name(std::string_view n) {
  if (n.empty() || n.size() > 128) return false;
  for (char c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}

// The longest argument string (or serialized value) in `v`, for the size limit.
size_t largest(const json::value& v) {
  if (v.is_string()) return v.as_string().size();
  size_t m = 0;
  if (v.is_array()) {
    for (const auto& x : v.as_array()) m = std::max(m, largest(x));
  } else if (v.is_object()) {
    for (const auto& kv : v.as_object()) m = std::max(m, largest(kv.value()));
  }
  return m;
}

}  // namespace

CustomTool parse_custom_tool(const json::object& spec, const std::string& path) {
  for (const auto& kv : spec) {
    const std::string k(kv.key());
    if (k != "name" && k != "description" && k != "input_schema" && k != "command" &&
        k != "timeout_ms") {
      throw ConfigError(path + "." + k + " is not a known key (expected name, description, "
                        "input_schema, command, timeout)");
    }
  }
  CustomTool t;
  t.name = str(spec, "name");
  if (!is_tool_name(t.name)) {
    throw ConfigError(path + ".name '" + t.name + "' must be 1-128 characters of [A-Za-z0-9_.-]");
  }
  for (const auto& b : kBuiltins) {
    if (t.name == b.name) {
      throw ConfigError(path + ".name '" + t.name + "' is a tool of the agent toolset already");
    }
  }
  if (t.name == kSandboxOpen || t.name == kSandboxClose) {
    throw ConfigError(path + ".name '" + t.name +
                      "' is reserved: it opens or closes a sandbox by handle");
  }
  t.description = str(spec, "description");
  json::value schema = json::object{{"type", "object"}};
  if (auto* s = spec.if_contains("input_schema")) {
    if (!s->is_object()) throw ConfigError(path + ".input_schema must be a JSON Schema object");
    schema = *s;
  }
  std::string error;
  auto compiled = JsonSchema::compile(schema, error);
  if (!compiled) throw ConfigError(path + ".input_schema: " + error);
  if (auto* type = schema.as_object().if_contains("type");
      !type || !type->is_string() || type->as_string() != "object") {
    throw ConfigError(path + ".input_schema must have type: object (tool arguments are an object)");
  }
  t.schema = *compiled;
  t.input_schema = schema.as_object();
  auto* cmd = spec.if_contains("command");
  if (!cmd || !cmd->is_array() || cmd->as_array().empty()) {
    throw ConfigError(path + ".command must be a non-empty list: the program and its arguments, "
                      "with {{argument}} where an argument goes (it is never run by a shell)");
  }
  for (const auto& a : cmd->as_array()) {
    if (!a.is_string()) throw ConfigError(path + ".command must be a list of strings");
    t.command.emplace_back(a.as_string());
  }
  // Every {{name}} must be a property of the schema.
  const json::object* props = nullptr;
  if (auto* p = schema.as_object().if_contains("properties"); p && p->is_object()) {
    props = &p->as_object();
    if (props->contains(kSandboxId)) {
      throw ConfigError(path + ".input_schema.properties." + std::string(kSandboxId) +
                        " is reserved: it names the sandbox a call runs in");
    }
  }
  for (const auto& a : t.command) {
    for (size_t at = a.find("{{"); at != std::string::npos; at = a.find("{{", at + 2)) {
      const size_t end = a.find("}}", at);
      if (end == std::string::npos) throw ConfigError(path + ".command: '" + a + "' has an unclosed {{");
      const std::string name = a.substr(at + 2, end - at - 2);
      if (!props || !props->contains(name)) {
        throw ConfigError(path + ".command: {{" + name + "}} is not a property of input_schema");
      }
    }
  }
  if (auto* ms = spec.if_contains("timeout_ms")) {
    if (!ms->is_int64() || ms->as_int64() <= 0) throw ConfigError(path + ".timeout must be positive");
    t.timeout = std::chrono::milliseconds(ms->as_int64());
  }
  return t;
}

namespace {
// How a tool is listed when sandboxes by handle are offered: `sandbox_id` among its properties.
json::value with_sandbox_id(json::value schema) {
  json::value& props = schema.as_object()["properties"];
  if (!props.is_object()) props = json::object{};
  props.as_object()[kSandboxId] = json::object{
      {"type", "string"},
      {"description",
       "The sandbox to run in, as sandbox_open returned it. Without it the call runs in the "
       "sandbox of the agent's MCP session; an agent without a session (MCP 2026-07-28) must "
       "give it."}};
  return schema;
}

std::string format_idle(std::chrono::milliseconds d) {
  const auto m = std::chrono::duration_cast<std::chrono::minutes>(d).count();
  return m >= 1 ? std::to_string(m) + " minutes"
                : std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) +
                      " seconds";
}
}  // namespace

Toolset::Toolset(std::vector<CustomTool> custom, ToolsetLimits limits) : limits_(limits) {
  const bool handles = limits_.handle_idle_timeout.count() > 0;
  for (const auto& b : kBuiltins) {
    const json::value schema = json::parse(b.schema);
    std::string error;
    auto compiled = JsonSchema::compile(schema, error);
    if (!compiled) throw std::logic_error(std::string("built-in schema of ") + b.name + ": " + error);
    builtins_.emplace(b.name, Builtin{b.op, *compiled});
    definitions_.push_back(
        json::object{{"name", b.name},
                     {"title", b.title},
                     {"description", b.description},
                     {"inputSchema", handles ? with_sandbox_id(schema) : schema}});
  }
  for (auto& t : custom) {
    json::value schema = t.input_schema;
    definitions_.push_back(
        json::object{{"name", t.name},
                     {"description", t.description},
                     {"inputSchema", handles ? with_sandbox_id(schema) : schema}});
    const std::string name = t.name;
    custom_.emplace(name, std::move(t));
  }
  if (!handles) return;
  const std::string idle = format_idle(limits_.handle_idle_timeout);
  definitions_.push_back(json::object{
      {"name", kSandboxOpen},
      {"title", "Open a sandbox"},
      {"description",
       "Start a sandbox of your own — a private workspace and a persistent shell — and return "
       "its sandbox_id. Pass it as sandbox_id to every other tool so that files and shell "
       "state carry over between calls. Needed when you have no MCP session (MCP 2026-07-28); "
       "with one, the session's sandbox is used by default. The sandbox is removed with "
       "everything in it after " +
           idle +
           " without a call, on sandbox_close, or when the "
           "sandbox agent stops; a call naming it after that is an error, and sandbox_open gives "
           "a new one."},
      {"inputSchema",
       json::object{
           {"type", "object"}, {"properties", json::object{}}, {"additionalProperties", false}}},
      {"outputSchema",
       json::object{{"type", "object"},
                    {"properties", json::object{{kSandboxId, json::object{{"type", "string"}}}}},
                    {"required", json::array{kSandboxId}}}}});
  definitions_.push_back(json::object{
      {"name", kSandboxClose},
      {"title", "Close a sandbox"},
      {"description",
       "Remove a sandbox that sandbox_open returned, with its workspace, shell and every "
       "process in it."},
      {"inputSchema",
       json::object{{"type", "object"},
                    {"properties", json::object{{kSandboxId, json::object{{"type", "string"}}}}},
                    {"required", json::array{kSandboxId}},
                    {"additionalProperties", false}}}});
  // Their arguments are checked as every tool's are, against the schemas just listed.
  for (size_t i = definitions_.size() - 2; i < definitions_.size(); ++i) {
    const auto& d = definitions_[i].as_object();
    std::string error;
    auto compiled = JsonSchema::compile(d.at("inputSchema"), error);
    if (!compiled) throw std::logic_error("schema of " + std::string(d.at("name").as_string()));
    handle_schemas_.emplace(std::string(d.at("name").as_string()), *compiled);
  }
}

bool Toolset::check_handle_arguments(std::string_view name, const json::value& arguments,
                                     std::string& error) const {
  auto s = handle_schemas_.find(name);
  if (s == handle_schemas_.end()) {
    error = "Unknown tool '" + std::string(name) + "'";
    return false;
  }
  std::string why;
  if (s->second.validate(arguments.is_null() ? json::value(json::object{}) : arguments, why)) {
    return true;
  }
  error = "Invalid arguments for tool '" + std::string(name) + "': " + why;
  return false;
}

json::object Toolset::opened_result(const std::string& id) const {
  json::object r = text_result("Opened sandbox " + id + ". Pass \"sandbox_id\": \"" + id +
                               "\" to every tool call that should run in it; it is removed after " +
                               format_idle(limits_.handle_idle_timeout) + " without a call.");
  r["structuredContent"] = json::object{{kSandboxId, id}};
  return r;
}

bool Toolset::to_request(std::string_view name, const json::value& arguments,
                         toolbox::Request& out, std::string& error) const {
  out = toolbox::Request{};
  const json::value args = arguments.is_null() ? json::value(json::object{}) : arguments;
  const std::string tool(name);
  auto bad = [&](const std::string& why) {
    error = "Invalid arguments for tool '" + tool + "': " + why;
    return false;
  };
  if (largest(args) > limits_.max_argument) {
    return bad("an argument is larger than " + std::to_string(limits_.max_argument) +
               " bytes, the most this sandbox accepts");
  }
  if (auto c = custom_.find(name); c != custom_.end()) {
    std::string why;
    if (!c->second.schema.validate(args, why)) return bad(why);
    out.op = toolbox::Op::kExec;
    out.timeout_ms = static_cast<uint64_t>(c->second.timeout.count());
    for (const auto& part : c->second.command) {
      std::string arg;
      size_t from = 0;
      for (size_t at = part.find("{{"); at != std::string::npos; at = part.find("{{", from)) {
        const size_t end = part.find("}}", at);
        arg.append(part, from, at - from);
        const std::string key = part.substr(at + 2, end - at - 2);
        if (auto* v = args.as_object().if_contains(key)) {
          arg += v->is_string() ? std::string(v->as_string()) : json::serialize(*v);
        }
        from = end + 2;
      }
      arg.append(part, from, std::string::npos);
      out.argv.push_back(std::move(arg));
    }
    return true;
  }
  auto b = builtins_.find(name);
  if (b == builtins_.end()) {
    error = "Unknown tool '" + tool + "'";
    return false;
  }
  std::string why;
  if (!b->second.schema.validate(args, why)) return bad(why);
  const auto& o = args.as_object();
  out.op = b->second.op;
  switch (out.op) {
    case Op::kBash: {
      out.command = str(o, "command");
      if (auto* r = o.if_contains("restart")) out.restart = r->as_bool();
      auto timeout = limits_.default_timeout;
      if (auto* t = o.if_contains("timeout_ms")) timeout = std::chrono::milliseconds(t->as_int64());
      if (timeout > limits_.max_timeout) {
        return bad("timeout_ms " + std::to_string(timeout.count()) + " is above this sandbox's "
                   "limit of " + std::to_string(limits_.max_timeout.count()) + " ms");
      }
      out.timeout_ms = static_cast<uint64_t>(timeout.count());
      if (out.command.empty() && !out.restart) return bad("command must not be empty");
      break;
    }
    case Op::kRead:
      out.path = str(o, "file_path");
      if (auto* vr = o.if_contains("view_range")) {
        out.view_range = {vr->as_array()[0].as_int64(), vr->as_array()[1].as_int64()};
      }
      break;
    case Op::kWrite:
      out.path = str(o, "file_path");
      out.content = str(o, "content");
      break;
    case Op::kEdit:
      out.path = str(o, "file_path");
      out.old_string = str(o, "old_string");
      out.new_string = str(o, "new_string");
      if (auto* r = o.if_contains("replace_all")) out.replace_all = r->as_bool();
      break;
    case Op::kGlob:
    case Op::kGrep:
      out.pattern = str(o, "pattern");
      out.path = str(o, "path");
      break;
    case Op::kFetch:
      out.url = str(o, "url");
      out.timeout_ms = 30'000;
      break;
    default:
      break;
  }
  if (out.path.find('\0') != std::string::npos || out.url.find('\0') != std::string::npos) {
    return bad("a path or URL must not contain NUL");
  }
  return true;
}

json::object Toolset::to_result(std::string_view name, const toolbox::Reply& reply) {
  // Valid UTF-8 already: the reply was JSON, which the parser accepts only as UTF-8.
  std::string text = reply.text;
  if (reply.exit_code && (name == "bash" || reply.exit_code != 0)) {
    if (!text.empty() && text.back() != '\n') text += '\n';
    text += "[exit status " + std::to_string(*reply.exit_code) + "]";
  }
  if (text.empty()) text = "(no output)";
  json::object result{
      {"content", json::array{json::object{{"type", "text"}, {"text", std::move(text)}}}},
      {"isError", reply.is_error}};
  return result;
}

json::object Toolset::error_result(std::string_view text) { return text_result(text, true); }

json::object Toolset::text_result(std::string_view text, bool is_error) {
  return json::object{{"content", json::array{json::object{{"type", "text"}, {"text", text}}}},
                      {"isError", is_error}};
}

}  // namespace airlock::sandbox
