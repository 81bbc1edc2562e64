// The MCP 2026-07-28 revision's wire words, shared by airlockd's gateway (which serves it to
// agents) and mcp-tunnel (which speaks it to private servers): the revision's name, the
// per-request `_meta` keys that replace the session, and the header-value encoding of
// `Mcp-Name` (non-ASCII text travels as `=?base64?…?=`). Plain functions; thread-safe.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::mcp {

// The stateless revision: no initialize, no session, every request self-describing.
inline constexpr std::string_view kStatelessRevision = "2026-07-28";

// The `_meta` keys every 2026-07-28 request carries (clientInfo is optional), the per-request
// log level, and what the server answers with.
inline constexpr std::string_view kMetaPrefix = "io.modelcontextprotocol/";
inline constexpr std::string_view kMetaVersion = "io.modelcontextprotocol/protocolVersion";
inline constexpr std::string_view kMetaCapabilities = "io.modelcontextprotocol/clientCapabilities";
inline constexpr std::string_view kMetaClientInfo = "io.modelcontextprotocol/clientInfo";
inline constexpr std::string_view kMetaLogLevel = "io.modelcontextprotocol/logLevel";
inline constexpr std::string_view kMetaSubscription = "io.modelcontextprotocol/subscriptionId";
inline constexpr std::string_view kMetaServerInfo = "io.modelcontextprotocol/serverInfo";

// The body field the Mcp-Name header mirrors for `method`: "name" for tools/call and
// prompts/get, "uri" for resources/read; empty for a method that has no Mcp-Name.
std::string_view name_field(std::string_view method);

// The header form of a value: itself when it is printable ASCII without leading or trailing
// blanks, else `=?base64?…?=` of its bytes.
std::string encode_header_value(std::string_view value);
// The inverse: the decoded text of a `=?base64?…?=` value (nullopt when its base64 is
// invalid), any other value as it is.
std::optional<std::string> decode_header_value(std::string_view value);

// A tool argument mirrored into a header: a property of the tool's inputSchema annotated
// `"x-mcp-header": "Region"` travels as `Mcp-Param-Region`, with the argument's value as text
// (a string as it is, an integer in decimal, a boolean as true / false), before encoding.
struct HeaderParam {
  std::string header;                // the annotation: the header is Mcp-Param-<header>
  std::optional<std::string> value;  // absent when the call does not give that argument
};
// The header parameters of a call of a tool with `input_schema` and `arguments`. False with
// `error` when an annotation breaks the revision's rules: empty or not an HTTP token, the same
// as another one ignoring case, on a property whose type is not string, integer or boolean,
// or not reachable from the root through `properties` alone.
bool header_params(const boost::json::object& input_schema, const boost::json::value& arguments,
                   std::vector<HeaderParam>& out, std::string& error);
// Whether `schema` has an x-mcp-header annotation anywhere (valid or not): a tool without one
// has no header parameters, and its calls need no walk of their arguments.
bool mentions_header_params(const boost::json::value& schema);

}  // namespace airlock::mcp
