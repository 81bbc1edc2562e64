// How mcp-tunnel speaks MCP 2026-07-28 to a private server that serves it, with no session:
// the `server/discover` probe and what its answer says, the per-request `_meta` envelope that
// replaces initialize, the requests that revision no longer has (answered here), and the
// input_required results that stand where a 2025 server would have sent elicitation, sampling
// or roots/list requests mid-call — turned into those requests for the agent (whose session
// with airlockd is of the 2025 kind), and turned back into a retry with `inputResponses` and
// the server's `requestState` once the agent has answered them all.
// Plain functions over JSON; SessionCore (session_core.h) holds the state. Thread-safe.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace airlock::tunnel::stateless {
namespace json = boost::json;

// The probe, sent before any initialize to an http(s) server. `client`: the initialize params
// the session would present (protocolVersion, capabilities, clientInfo).
json::object discover_request(int64_t id, const json::object& client);
// The server's answer to the probe: what initialize would have returned (protocolVersion
// 2026-07-28, capabilities, serverInfo, instructions) when the server serves 2026-07-28;
// nullopt when it does not, or answered with an error (a 2025 server): use a session.
std::optional<json::object> discovered(const json::object& answer);

// The `_meta` keys every request carries for `client`: the protocol version, the client's
// capabilities and info. Made once per session.
json::object envelope_meta(const json::object& client);
// `request` as a 2026 server takes it: `_meta` gains `meta` (envelope_meta) and the log level
// the agent last set (if any).
json::object envelope(json::object request, const json::object& meta, const std::string& log_level);

// A request that 2026-07-28 does not have, answered without the server: ping (an empty
// result), logging/setLevel (remembered in `log_level`, then sent with every request), and
// resources/subscribe / unsubscribe (method not found). nullopt: send it to the server.
std::optional<json::object> answer_locally(const json::object& request, std::string& log_level,
                                           const std::string& server);

// An input_required result: the requests the server needs answered (key and the request
// {method, params}) and its requestState, if any.
struct InputRound {
  std::vector<std::pair<std::string, json::object>> requests;
  std::optional<json::value> state;
};
// nullopt when `response` is not an input_required result. A malformed one (no requests, a
// request without a method) sets `error` and returns nullopt.
std::optional<InputRound> input_required(const json::object& response, std::string& error);
// The request sent again, carrying the answers by key and the server's requestState.
json::object retry(json::object request, json::object responses,
                   const std::optional<json::value>& state);

// subscriptions/listen for the list changes `capabilities` (the server's) announces; nullopt
// when it announces none.
std::optional<json::object> listen_request(int64_t id, const json::object& capabilities,
                                           const json::object& client);
// A notification of a listen stream that carries nothing for downstream (the acknowledgment).
bool is_listen_bookkeeping(const json::object& notification);

}  // namespace airlock::tunnel::stateless
