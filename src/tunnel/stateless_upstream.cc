#include "tunnel/stateless_upstream.h"

#include "common/jsonrpc.h"
#include "common/mcp_revision.h"

namespace airlock::tunnel::stateless {
namespace {

json::object meta_of(const json::object& client) {
  json::object meta{{mcp::kMetaVersion, mcp::kStatelessRevision}};
  const json::value* caps = client.if_contains("capabilities");
  meta[mcp::kMetaCapabilities] = caps && caps->is_object() ? *caps : json::object{};
  if (const json::value* info = client.if_contains("clientInfo"))
    meta[mcp::kMetaClientInfo] = *info;
  return meta;
}

bool announces_list_changed(const json::object& capabilities, std::string_view kind) {
  const json::value* c = capabilities.if_contains(kind);
  if (!c || !c->is_object()) return false;
  const json::value* l = c->as_object().if_contains("listChanged");
  return l && l->is_bool() && l->as_bool();
}

}  // namespace

json::object discover_request(int64_t id, const json::object& client) {
  return jsonrpc::make_request(id, "server/discover", json::object{{"_meta", meta_of(client)}});
}

std::optional<json::object> discovered(const json::object& answer) {
  const json::value* r = answer.if_contains("result");
  if (!r || !r->is_object()) return std::nullopt;
  const json::object& result = r->as_object();
  const json::value* versions = result.if_contains("supportedVersions");
  if (!versions || !versions->is_array()) return std::nullopt;
  bool serves = false;
  for (const auto& v : versions->as_array()) {
    serves = serves || (v.is_string() && v.as_string() == mcp::kStatelessRevision);
  }
  if (!serves) return std::nullopt;
  json::object init{{"protocolVersion", mcp::kStatelessRevision}};
  const json::value* caps = result.if_contains("capabilities");
  init["capabilities"] = caps && caps->is_object() ? *caps : json::object{};
  const json::value* meta = result.if_contains("_meta");
  const json::value* info =
      meta && meta->is_object() ? meta->as_object().if_contains(mcp::kMetaServerInfo) : nullptr;
  if (!info) info = result.if_contains("serverInfo");
  if (info && info->is_object()) init["serverInfo"] = *info;
  if (const json::value* text = result.if_contains("instructions"); text && text->is_string()) {
    init["instructions"] = *text;
  }
  return init;
}

json::object envelope_meta(const json::object& client) { return meta_of(client); }

json::object envelope(json::object request, const json::object& envelope,
                      const std::string& log_level) {
  json::value& params = request["params"];
  if (!params.is_object()) params = json::object{};
  json::value& meta = params.as_object()["_meta"];
  if (!meta.is_object()) meta = json::object{};
  for (const auto& [key, value] : envelope) meta.as_object()[key] = value;
  if (!log_level.empty()) meta.as_object()[mcp::kMetaLogLevel] = log_level;
  return request;
}

std::optional<json::object> answer_locally(const json::object& request, std::string& log_level,
                                           const std::string& server) {
  const json::value& id = request.at("id");
  const json::string& method = request.at("method").as_string();
  if (method == "ping") return jsonrpc::make_result(id, json::object{});
  if (method == "logging/setLevel") {
    const json::value* params = request.if_contains("params");
    const json::value* level =
        params && params->is_object() ? params->as_object().if_contains("level") : nullptr;
    if (!level || !level->is_string()) {
      return jsonrpc::make_error(id, jsonrpc::kInvalidParams,
                                 "Invalid params: logging/setLevel needs a string 'level'");
    }
    log_level = std::string(level->as_string());
    return jsonrpc::make_result(id, json::object{});
  }
  if (method == "resources/subscribe" || method == "resources/unsubscribe") {
    return jsonrpc::make_error(id, jsonrpc::kMethodNotFound,
                               "Method not found: server '" + server + "' speaks MCP " +
                                   std::string(mcp::kStatelessRevision) + ", which has no " +
                                   std::string(method));
  }
  return std::nullopt;
}

std::optional<InputRound> input_required(const json::object& response, std::string& error) {
  const json::value* r = response.if_contains("result");
  if (!r || !r->is_object()) return std::nullopt;
  const json::value* type = r->as_object().if_contains("resultType");
  if (!type || !type->is_string() || type->as_string() != "input_required") return std::nullopt;
  InputRound round;
  if (const json::value* s = r->as_object().if_contains("requestState")) round.state = *s;
  const json::value* requests = r->as_object().if_contains("inputRequests");
  if (!requests || !requests->is_object() || requests->as_object().empty()) {
    error = "an input_required result without inputRequests";
    return std::nullopt;
  }
  for (const auto& [key, value] : requests->as_object()) {
    const json::value* method =
        value.is_object() ? value.as_object().if_contains("method") : nullptr;
    if (!method || !method->is_string()) {
      error = "input request '" + std::string(key) + "' names no method";
      return std::nullopt;
    }
    json::object request{{"method", *method}};
    const json::value* params = value.as_object().if_contains("params");
    request["params"] = params && params->is_object() ? *params : json::object{};
    round.requests.emplace_back(std::string(key), std::move(request));
  }
  return round;
}

json::object retry(json::object request, json::object responses,
                   const std::optional<json::value>& state) {
  json::value& params = request["params"];
  if (!params.is_object()) params = json::object{};
  params.as_object()["inputResponses"] = std::move(responses);
  if (state) {
    params.as_object()["requestState"] = *state;
  } else {
    params.as_object().erase("requestState");
  }
  return request;
}

std::optional<json::object> listen_request(int64_t id, const json::object& capabilities,
                                           const json::object& client) {
  json::object filter;
  if (announces_list_changed(capabilities, "tools")) filter["toolsListChanged"] = true;
  if (announces_list_changed(capabilities, "prompts")) filter["promptsListChanged"] = true;
  if (announces_list_changed(capabilities, "resources")) filter["resourcesListChanged"] = true;
  if (filter.empty()) return std::nullopt;
  return jsonrpc::make_request(
      id, "subscriptions/listen",
      json::object{{"_meta", meta_of(client)}, {"notifications", std::move(filter)}});
}

bool is_listen_bookkeeping(const json::object& notification) {
  const json::value* m = notification.if_contains("method");
  return m && m->is_string() && m->as_string() == "notifications/subscriptions/acknowledged";
}

}  // namespace airlock::tunnel::stateless
