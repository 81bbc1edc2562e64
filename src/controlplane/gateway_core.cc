#include "controlplane/gateway_core.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/algorithm/string/predicate.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <set>

#include "common/config_util.h"
#include "common/encoding.h"
#include "common/mcp_revision.h"
#include "common/stream_contract.h"

namespace airlock::controlplane {
using namespace gateway;
namespace rpc = jsonrpc;

namespace {
const char* const kVersions[] = {"2025-11-25", "2025-06-18", "2025-03-26"};
constexpr const char* kLatest = "2025-11-25";
// The stateless revision, and its per-request _meta keys.
constexpr std::string_view kModern = mcp::kStatelessRevision;
using mcp::kMetaCapabilities;
using mcp::kMetaLogLevel;
using mcp::kMetaPrefix;
using mcp::kMetaServerInfo;
using mcp::kMetaSubscription;
using mcp::kMetaVersion;
// How long a modern agent may reuse a list: the catalog follows connectors as they come and
// go, and subscriptions/listen tells listeners at once.
constexpr int64_t kListTtlMs = 10000;

bool supported_version(std::string_view v) {
  for (const char* k : kVersions) {
    if (v == k) return true;
  }
  return false;
}

int64_t ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

std::string str_of(const json::object* o, std::string_view key) {
  if (!o) return {};
  auto* v = o->if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// A tools/call result that reports `text` as the tool's error.
json::object tool_error(std::string_view text) {
  return json::object{{"content", json::array{json::object{{"type", "text"}, {"text", text}}}},
                      {"isError", true}};
}

std::string signature(const std::vector<const ExposedItem*>& items) {
  std::string s;
  for (const auto* i : items) s += json::serialize(i->definition) + "\n";
  return s;
}

std::vector<json::object> definitions(const std::vector<const ExposedItem*>& items) {
  std::vector<json::object> out;
  out.reserve(items.size());
  for (const auto* i : items) out.push_back(i->definition);
  return out;
}

// List cursors: an offset, base64url so that clients treat it as opaque.
std::string encode_cursor(size_t offset) {
  return base64("o:" + std::to_string(offset), /*url=*/true, /*pad=*/false);
}

std::optional<size_t> decode_cursor(std::string_view c) {
  auto text = from_base64(c);
  if (!text || text->rfind("o:", 0) != 0 || text->size() < 3 || text->size() > 12) {
    return std::nullopt;
  }
  size_t v = 0;
  for (char ch : text->substr(2)) {
    if (ch < '0' || ch > '9') return std::nullopt;
    v = v * 10 + static_cast<size_t>(ch - '0');
  }
  return v;
}

bool routed_method(std::string_view m) {
  return m == "tools/call" || m == "prompts/get" || m == "resources/read" ||
         m == "resources/subscribe" || m == "resources/unsubscribe" || m == "completion/complete";
}

// The tool or prompt name, or the resource URI, a routed request is about.
std::string target_of(const rpc::Message& msg) {
  const json::object* p = msg.params();
  if (msg.method() == "completion/complete") {
    const json::value* ref = p ? p->if_contains("ref") : nullptr;
    const json::object* r = ref && ref->is_object() ? &ref->as_object() : nullptr;
    const std::string name = str_of(r, "name");
    return name.empty() ? str_of(r, "uri") : name;
  }
  const std::string name = str_of(p, "name");
  return name.empty() ? str_of(p, "uri") : name;
}

const char* error_class_of(int64_t code) {
  switch (code) {
    // kRequestTimeout shares -32002 with kResourceNotFound: a deadline the gateway enforced
    // sets the call's end_class instead.
    case rpc::kUpstreamUnavailable:
      return "unavailable";
    case rpc::kInvalidParams:
      return "invalid_params";
    case rpc::kMethodNotFound:
      return "method_not_found";
    case rpc::kResourceNotFound:
      return "not_found";
    case rpc::kInvalidRequest:
      return "invalid_request";
    case rpc::kMissingClientCapability:
      return "missing_capability";
    default:
      return "server_error";
  }
}

// outcome and error_class from an answer: a JSON-RPC error, a tool error, or a result.
void classify(const json::object& answer, AuditRecord& r) {
  if (auto* e = answer.if_contains("error"); e && e->is_object()) {
    r.outcome = "error";
    auto* code = e->as_object().if_contains("code");
    r.error_class = code && code->is_int64() ? error_class_of(code->as_int64()) : "server_error";
    return;
  }
  if (auto* res = answer.if_contains("result"); res && res->is_object()) {
    if (auto* ie = res->as_object().if_contains("isError"); ie && ie->is_bool() && ie->as_bool()) {
      r.outcome = "tool_error";
      return;
    }
  }
  r.outcome = "ok";
}

// The audit record of a server's request the agent answered (`response`, as it goes back):
// a declined or cancelled elicitation is answered, not failed.
AuditRecord relayed_record(std::string actor, std::string session, std::string method,
                           std::string during, std::string connector, std::string server,
                           int64_t duration_ms, uint64_t bytes_in, uint64_t bytes_out,
                           const json::object& response) {
  AuditRecord r;
  r.type = AuditType::kServerRequest;
  r.actor = std::move(actor);
  r.session = std::move(session);
  r.method = std::move(method);
  r.target = std::move(during);
  r.connector = std::move(connector);
  r.server = std::move(server);
  r.duration_ms = duration_ms;
  r.bytes_in = bytes_in;
  r.bytes_out = bytes_out;
  classify(response, r);
  if (auto* res = response.if_contains("result"); res && res->is_object()) {
    if (auto* a = res->as_object().if_contains("action");
        a && a->is_string() && a->as_string() != "accept") {
      r.outcome = "declined";
      r.detail = json::object{{"action", a->as_string()}};
    }
  }
  return r;
}

const std::set<std::string, std::less<>> kLogLevels = {"debug", "info",     "notice", "warning",
                                                       "error", "critical", "alert",  "emergency"};

// A log level's rank, lowest first; -1 for none.
int level_rank(std::string_view level) {
  const char* const order[] = {"debug", "info",     "notice", "warning",
                               "error", "critical", "alert",  "emergency"};
  for (int i = 0; i < 8; ++i) {
    if (level == order[i]) return i;
  }
  return -1;
}

json::object server_info() {
  return json::object{{"name", "airlock"}, {"title", "Airlock"}, {"version", AIRLOCK_VERSION}};
}

// What a modern agent must be told differently: every result says `resultType`, and codes
// the revision retired are not used (-32002 was resource-not-found, and the timeout's).
void modernize(json::object& message, std::string_view method) {
  if (auto* r = message.if_contains("result"); r && r->is_object()) {
    auto& result = r->as_object();
    if (!result.contains("resultType")) result["resultType"] = "complete";
    if (method == "resources/read" && !result.contains("ttlMs")) {
      result["ttlMs"] = 0;  // a private server's resource: no freshness is known
      result["cacheScope"] = "private";
    }
  } else if (auto* e = message.if_contains("error"); e && e->is_object()) {
    auto& error = e->as_object();
    if (auto* code = error.if_contains("code"); code && *code == rpc::kResourceNotFound) {
      *code = method == "resources/read" ? rpc::kInvalidParams : rpc::kUpstreamUnavailable;
    }
  }
}
}  // namespace

// One of the session's streams to a server of a connector (a tunnel's private server, or a
// sandbox's toolset): the connector holds the matching session on its side.
struct GatewayCore::Stream {
  std::string key;      // connector/server
  uint64_t serial = 0;  // tells a stream from an earlier one under the same key
  ConnectorRef connector;
  std::string server;
  std::set<std::string> internal_ids;  // our own requests, whose answers are swallowed
};

struct GatewayCore::Call {
  json::value agent_id;
  std::string key;  // id_key(agent_id)
  std::string method;
  std::string target;     // tool / prompt / uri, for messages and the audit record
  uint64_t exchange = 0;  // where its answer goes
  json::value upstream_id;     // the id it went upstream under (modern: of the context's own)
  json::value progress_token;  // the agent's, when a modern call's went up as its key
  bool modern = false;
  std::string log_level;     // modern: the level it asked for; empty: no log messages
  json::object client_caps;  // modern: the capabilities its request declared
  // Modern: what the server asked of the agent mid-call and the agent has not answered yet,
  // by the key the input_required result names it with. Answered on the agent's retry.
  struct Input {
    json::value server_id;
    std::string method;
    json::object params;
    Clock::time_point asked;
    uint64_t bytes = 0;
  };
  std::map<std::string, Input> inputs;
  uint64_t round = 0;  // input_required results given; a requestState names its round
  uint64_t next_input = 1;
  std::string stream;
  uint64_t stream_serial = 0;
  ConnectorRef connector;
  std::string server;
  std::string binding;
  std::string progress_key;
  std::chrono::milliseconds timeout{60000};
  Clock::time_point started, deadline, hard_deadline;
  uint64_t bytes_in = 0, bytes_out = 0, redactions = 0;
  std::string end_class;  // how it ended when the answer alone does not say ("cancelled")
};

// A server's request to the agent, relayed under an id of the session's own.
struct ServerRequest {
  std::string stream;
  uint64_t stream_serial = 0;
  json::value original_id;
  // For the audit record written when the agent answers.
  std::string method, connector, server, during;  // `during`: the call it came in, if any
  Clock::time_point started;
  uint64_t bytes_out = 0;
};

struct GatewayCore::Session {
  std::string id, tag, agent;
  std::vector<std::string> scope;
  std::string version;
  json::object client;  // protocolVersion, capabilities, clientInfo
  bool initialized = false;
  bool listening = false;
  std::map<std::string, Stream> streams;
  std::map<std::string, Call> calls;
  std::map<std::string, std::string> by_progress;         // progress token key -> call key
  std::map<std::string, ServerRequest> server_requests;   // agent-facing id key -> origin
  std::map<std::string, json::value> server_request_ids;  // stream key | id key -> agent id
  uint64_t next_server_request = 1;
  uint64_t next_internal = 1;
  uint64_t next_stream_serial = 1;
  // Sandbox sessions (workspace, shell) this agent session lost — the sandbox agent restarted,
  // its link went, the session idled out — by stream key: the next call is told so, once.
  std::map<std::string, std::string> lost;
  std::string log_level;
  Clock::time_point last_active;
  std::string tools_sig, prompts_sig, resources_sig;
  // A modern agent's context (no session: its requests share its connector streams), and its
  // subscriptions/listen streams by exchange.
  bool stateless = false;
  struct Listener {
    json::value id;  // the listen request's: each notification carries it
    bool tools = false, prompts = false, resources = false;
  };
  std::map<uint64_t, Listener> listeners;

  bool client_supports(std::string_view cap) const {
    auto* caps = client.if_contains("capabilities");
    return caps && caps->is_object() && caps->as_object().contains(cap);
  }
  Call* call(const std::string& key) {
    auto it = calls.find(key);
    return it == calls.end() ? nullptr : &it->second;
  }
};

GatewayCore::GatewayCore(Limits limits) : limits_(limits) {}
GatewayCore::~GatewayCore() = default;

// ---- catalog -------------------------------------------------------------------------------

bool GatewayCore::in_scope(const Session& s, std::string_view name) const {
  return any_glob_match(s.scope, name);
}

std::vector<const ExposedItem*> GatewayCore::visible_tools(const Session& s) const {
  std::vector<const ExposedItem*> out;
  for (const auto& t : view_.catalog->tools()) {
    if (in_scope(s, t.name)) out.push_back(&t);
  }
  return out;
}

std::vector<const ExposedItem*> GatewayCore::visible_prompts(const Session& s) const {
  std::vector<const ExposedItem*> out;
  for (const auto& p : view_.catalog->prompts()) {
    if (in_scope(s, p.name)) out.push_back(&p);
  }
  return out;
}

// Resources of a binding are visible to a key that may use something of that binding.
bool GatewayCore::binding_visible(const Session& s, const Binding* b) const {
  if (any_glob_match(s.scope, "*")) return true;
  for (const auto& t : view_.catalog->tools()) {
    if (t.route.binding == b && in_scope(s, t.name)) return true;
  }
  for (const auto& p : view_.catalog->prompts()) {
    if (p.route.binding == b && in_scope(s, p.name)) return true;
  }
  return false;
}

std::vector<const ExposedItem*> GatewayCore::visible_resources(const Session& s) const {
  std::vector<const ExposedItem*> out;
  for (const auto& r : view_.catalog->resources()) {
    if (binding_visible(s, r.route.binding)) out.push_back(&r);
  }
  return out;
}

Effects GatewayCore::set_catalog(CatalogView view) {
  view_ = std::move(view);
  Out out;
  for (auto& [id, s] : sessions_) notify_list_changes(*s, out);
  return out;
}

void GatewayCore::notify_list_changes(Session& s, Out& out) {
  if (!s.initialized) return;
  auto push = [&](std::string& sig, std::string now, const char* method) {
    if (sig == now) return;
    sig = std::move(now);
    if (!s.stateless) {
      to_agent(s, 0, rpc::make_notification(method, {}), false, out);
      return;
    }
    const std::string_view m = method;
    for (const auto& [x, l] : s.listeners) {
      const bool wanted = m == "notifications/tools/list_changed"     ? l.tools
                          : m == "notifications/prompts/list_changed" ? l.prompts
                                                                      : l.resources;
      if (!wanted) continue;
      to_agent(s, x,
               rpc::make_notification(
                   method, json::object{{"_meta", json::object{{kMetaSubscription, l.id}}}}),
               false, out);
    }
  };
  push(s.tools_sig, signature(visible_tools(s)), "notifications/tools/list_changed");
  push(s.prompts_sig, signature(visible_prompts(s)), "notifications/prompts/list_changed");
  push(s.resources_sig, signature(visible_resources(s)), "notifications/resources/list_changed");
}

std::string GatewayCore::unknown_tool_message(const std::string& name) const {
  const Catalog& catalog = *view_.catalog;
  // A tool its connector offered when it was last connected.
  for (const auto& b : *view_.bindings) {
    auto why = catalog.unavailable().find(b.name);
    auto inv = view_.inventories->find(b.connector);
    if (why == catalog.unavailable().end() || inv == view_.inventories->end()) continue;
    std::vector<std::string> ignored;
    const std::vector<Binding> alone{b};
    const std::map<ConnectorRef, ConnectorInventory> last{{b.connector, inv->second}};
    const Catalog offered = Catalog::build(alone, last, ignored);
    if (offered.tool(name)) return "Tool '" + name + "' is unavailable: " + why->second;
  }
  for (const auto& b : *view_.bindings) {
    // A single-tool binding exposes its upstream tool under the binding's own name.
    if ((!b.tool.empty() && b.name == name) ||
        (!b.prefix.empty() && name.rfind(b.prefix, 0) == 0)) {
      if (auto it = catalog.unavailable().find(b.name); it != catalog.unavailable().end()) {
        return "Tool '" + name + "' is unavailable: " + it->second;
      }
    }
  }
  return "Unknown tool '" + name + "'";
}

// ---- delivery ------------------------------------------------------------------------------

void GatewayCore::to_agent(Session& s, uint64_t exchange, json::object msg, bool final, Out& out) {
  if (exchange == 0 && s.stateless) return;  // no GET stream in the modern revision
  if (s.stateless) modernize(msg, "");
  out.push_back(ToAgent{s.id, exchange, json::serialize(msg), final});
}

void GatewayCore::to_call(Session& s, Call& c, const json::object& msg, bool final, Out& out,
                          int http_status) {
  if (c.modern && c.exchange == 0) return;  // waiting for the agent's retry: no one listens
  std::string text = json::serialize(msg);
  c.bytes_out += text.size();
  out.push_back(ToAgent{s.id, c.exchange, std::move(text), final, http_status});
}

void GatewayCore::send(Session& s, const std::string& stream, const json::object& msg, Out& out) {
  if (!s.streams.count(stream)) return;  // ended: there is no one to tell
  out.push_back(SendUpstream{s.id, stream, json::serialize(msg)});
}

// The call's answer: to the agent, and its audit record. The call is forgotten.
void GatewayCore::complete(Session& s, const std::string& key, json::object answer,
                           Clock::time_point now, Out& out, int http_status) {
  auto it = s.calls.find(key);
  if (it == s.calls.end()) return;
  AuditRecord r;
  classify(answer, r);  // as the server said it
  if (it->second.modern) {
    answer["id"] = it->second.agent_id;
    modernize(answer, it->second.method);
  }
  to_call(s, it->second, answer, true, out, http_status);
  Call c = std::move(it->second);
  s.calls.erase(it);
  if (c.modern) exchanges_.erase(c.exchange);
  if (!c.progress_key.empty()) s.by_progress.erase(c.progress_key);
  r.type = AuditType::kCall;
  r.actor = s.agent;
  r.session = s.tag;
  r.method = c.method;
  r.target = c.target;
  r.binding = c.binding;
  r.connector = c.connector.id();
  r.server = c.server;
  r.duration_ms = ms_between(c.started, now);
  r.bytes_in = c.bytes_in;
  r.bytes_out = c.bytes_out;
  r.redactions = c.redactions;
  if (!c.end_class.empty()) r.error_class = c.end_class;
  out.push_back(Record{std::move(r), true});
}

// ---- agent messages ------------------------------------------------------------------------

Effects GatewayCore::initialize(const std::string& id, const std::string& tag, const Agent& agent,
                                const rpc::Message& msg, uint64_t exchange, Clock::time_point now) {
  Out out;
  const auto* params = msg.params();
  const std::string requested = str_of(params, "protocolVersion");
  if (!params || requested.empty()) {
    out.push_back(ToAgent{id, exchange,
                          json::serialize(rpc::make_error(msg.id(), rpc::kInvalidParams,
                                                          "initialize needs "
                                                          "params.protocolVersion")),
                          true});
    return out;
  }
  if (sessions_.size() >= limits_.max_sessions) {
    out.push_back(ToAgent{
        id, exchange,
        json::serialize(rpc::make_error(msg.id(), rpc::kInternalError,
                                        "airlockd has reached mcp.max_sessions; try again later")),
        true, 503});
    return out;
  }
  auto owned = std::make_unique<Session>();
  Session& s = *owned;
  s.id = id;
  s.tag = tag;
  s.agent = agent.name;
  s.scope = agent.scope;
  s.version = supported_version(requested) ? requested : kLatest;
  s.client = *params;
  s.last_active = now;
  s.tools_sig = signature(visible_tools(s));
  s.prompts_sig = signature(visible_prompts(s));
  s.resources_sig = signature(visible_resources(s));
  sessions_[id] = std::move(owned);
  json::object result{
      {"protocolVersion", s.version},
      {"capabilities",
       json::object{{"tools", json::object{{"listChanged", true}}},
                    {"resources", json::object{{"subscribe", true}, {"listChanged", true}}},
                    {"prompts", json::object{{"listChanged", true}}},
                    {"logging", json::object{}},
                    {"completions", json::object{}}}},
      {"serverInfo",
       json::object{{"name", "airlock"}, {"title", "Airlock"}, {"version", AIRLOCK_VERSION}}},
      {"instructions",
       "Tools from private systems, reached through Airlock. Credentials stay at the edge."}};
  to_agent(s, exchange, rpc::make_result(msg.id(), std::move(result)), true, out);
  return out;
}

Effects GatewayCore::agent_message(const std::string& id, rpc::Message msg, size_t bytes,
                                   uint64_t exchange, Clock::time_point now) {
  Out out;
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return out;
  Session& s = *it->second;
  s.last_active = now;
  switch (msg.kind) {
    case rpc::Kind::kNotification:
      agent_notification(s, msg, now, out);
      break;
    case rpc::Kind::kResponse:
      agent_response(s, std::move(msg), bytes, now, out);
      break;
    case rpc::Kind::kRequest:
      agent_request(s, std::move(msg), bytes, exchange, now, out);
      break;
  }
  return out;
}

void GatewayCore::agent_notification(Session& s, const rpc::Message& msg, Clock::time_point now,
                                     Out& out) {
  const auto method = msg.method();
  if (method == "notifications/initialized") {
    s.initialized = true;
    return;
  }
  if (method == "notifications/cancelled") {
    const auto* p = msg.params();
    const json::value* rid = p ? p->if_contains("requestId") : nullptr;
    if (!rid) return;
    Call* c = s.call(rpc::id_key(*rid));
    if (!c) return;
    send(s, c->stream, msg.body, out);
    c->end_class = "cancelled";
    complete(s, c->key,
             rpc::make_error(c->agent_id, rpc::kRequestTimeout, "cancelled by the client"), now,
             out);
    return;
  }
  if (method == "notifications/roots/list_changed") {
    for (auto& [k, st] : s.streams) send(s, k, msg.body, out);
  }
  // Other notifications concern nothing a server holds.
}

void GatewayCore::agent_response(Session& s, rpc::Message msg, size_t bytes, Clock::time_point now,
                                 Out& out) {
  auto it = s.server_requests.find(rpc::id_key(msg.id()));
  if (it == s.server_requests.end()) return;
  ServerRequest p = std::move(it->second);
  s.server_requests.erase(it);
  out.push_back(Record{relayed_record(s.agent, s.tag, p.method, p.during, p.connector, p.server,
                                      ms_between(p.started, now), bytes, p.bytes_out, msg.body),
                       false});
  s.server_request_ids.erase(p.stream + "|" + rpc::id_key(p.original_id));
  msg.body["id"] = p.original_id;
  // Only to the stream the request came on: a later one under the same key never asked.
  auto st = s.streams.find(p.stream);
  if (st != s.streams.end() && st->second.serial == p.stream_serial) {
    send(s, p.stream, msg.body, out);
  }
}

void GatewayCore::list_page(Session& s, const rpc::Message& msg, uint64_t exchange,
                            std::vector<json::object> items, const char* key, Out& out) {
  size_t offset = 0;
  if (auto* p = msg.params()) {
    if (auto* c = p->if_contains("cursor"); c && !c->is_null()) {
      auto off = c->is_string() ? decode_cursor(c->as_string()) : std::nullopt;
      if (!off || *off > items.size()) {
        to_agent(s, exchange,
                 rpc::make_error(msg.id(), rpc::kInvalidParams,
                                 "invalid cursor; start again without one"),
                 true, out);
        return;
      }
      offset = *off;
    }
  }
  json::array page;
  const size_t end = std::min(items.size(), offset + limits_.page_size);
  for (size_t i = offset; i < end; ++i) page.push_back(std::move(items[i]));
  json::object result{{key, std::move(page)}};
  if (end < items.size()) result["nextCursor"] = encode_cursor(end);
  if (s.stateless) {
    // What a key sees depends on its scope: no cache may share it across keys.
    result["ttlMs"] = kListTtlMs;
    result["cacheScope"] = "private";
  }
  to_agent(s, exchange, rpc::make_result(msg.id(), std::move(result)), true, out);
}

void GatewayCore::agent_request(Session& s, rpc::Message msg, size_t bytes, uint64_t exchange,
                                Clock::time_point now, Out& out) {
  const std::string method(msg.method());
  const json::object* params = msg.params();
  if (method == "ping") {
    to_agent(s, exchange, rpc::make_result(msg.id(), json::object{}), true, out);
  } else if (method == "tools/list") {
    list_page(s, msg, exchange, definitions(visible_tools(s)), "tools", out);
  } else if (method == "prompts/list") {
    list_page(s, msg, exchange, definitions(visible_prompts(s)), "prompts", out);
  } else if (method == "resources/list") {
    list_page(s, msg, exchange, definitions(visible_resources(s)), "resources", out);
  } else if (method == "resources/templates/list") {
    std::vector<json::object> t;
    for (const auto& tp : view_.catalog->templates()) {
      if (binding_visible(s, tp.route.binding)) t.push_back(tp.definition);
    }
    list_page(s, msg, exchange, std::move(t), "resourceTemplates", out);
  } else if (method == "logging/setLevel") {
    const std::string level = str_of(params, "level");
    if (!kLogLevels.count(level)) {
      to_agent(s, exchange,
               rpc::make_error(msg.id(), rpc::kInvalidParams,
                               "level must be one of debug, info, notice, warning, error, "
                               "critical, alert, emergency"),
               true, out);
      return;
    }
    s.log_level = level;
    for (auto& [k, st] : s.streams) set_level(s, st, out);
    to_agent(s, exchange, rpc::make_result(msg.id(), json::object{}), true, out);
  } else if (routed_method(method)) {
    route(s, std::move(msg), bytes, exchange, now, out);
  } else {
    to_agent(s, exchange,
             rpc::make_error(msg.id(), rpc::kMethodNotFound, "Method not found: " + method), true,
             out);
  }
}

// A routed request: to the server that serves its tool, prompt or resource. Requests answered
// here (refused, unknown, unavailable) are audited as well as those a connector answers.
void GatewayCore::route(Session& s, rpc::Message msg, size_t bytes, uint64_t exchange,
                        Clock::time_point now, Out& out) {
  const std::string method(msg.method());
  // A modern agent's requests share its context but not an id space: each is keyed by its
  // exchange, and goes upstream under that.
  if (s.stateless && msg.params() && msg.params()->contains("requestState")) {
    return resume(s, std::move(msg), bytes, exchange, now, out);
  }
  const json::value own_id = json::string("x" + std::to_string(exchange));
  const std::string request = rpc::id_key(s.stateless ? own_id : msg.id());
  const std::string target = target_of(msg);
  const Catalog& catalog = *view_.catalog;
  std::string refusal;  // set when policy refuses it: the audit record says why
  auto answer_here = [&](const json::object& answer) {
    to_agent(s, exchange, answer, true, out);
    AuditRecord r;
    r.type = refusal.empty() ? AuditType::kCall : AuditType::kToolRefused;
    r.actor = s.agent;
    r.session = s.tag;
    r.method = method;
    r.target = target;
    r.bytes_in = bytes;
    r.bytes_out = json::serialize(answer).size();
    classify(answer, r);
    if (!refusal.empty()) {
      r.outcome = "refused";
      r.error_class = "policy";
      r.detail = json::object{{"reason", refusal}};
    }
    out.push_back(Record{std::move(r), true});
  };
  auto fail = [&](int code, const std::string& text, json::value data = nullptr) {
    answer_here(rpc::make_error(msg.id(), code, text, std::move(data)));
  };

  std::optional<Route> route;
  // Pointers, not operator[]: that may rehash the object and move what `params` points at.
  const json::object* params = msg.params();
  json::value* pv = msg.body.if_contains("params");
  json::object* mparams = pv && pv->is_object() ? &pv->as_object() : nullptr;
  if (method == "tools/call") {
    if (target.empty()) return fail(rpc::kInvalidParams, "tools/call needs params.name");
    if (!in_scope(s, target)) {
      refusal = "outside the agent key's scope";
      return fail(rpc::kInvalidParams,
                  "Unknown tool '" + target + "': not available to this agent key");
    }
    const auto* t = catalog.tool(target);
    if (!t) return fail(rpc::kInvalidParams, unknown_tool_message(target));
    route = t->route;
    (*mparams)["name"] = t->upstream_name;
  } else if (method == "prompts/get") {
    const auto* p = catalog.prompt(target);
    if (!p || !in_scope(s, target)) {
      return fail(rpc::kInvalidParams, "Unknown prompt '" + target + "'");
    }
    route = p->route;
    (*mparams)["name"] = p->upstream_name;
  } else if (method == "completion/complete") {
    const json::value* ref = params ? params->if_contains("ref") : nullptr;
    const json::object* r = ref && ref->is_object() ? &ref->as_object() : nullptr;
    const std::string type = str_of(r, "type");
    if (type == "ref/prompt") {
      const auto* p = catalog.prompt(target);
      if (p && in_scope(s, target)) {
        route = p->route;
        (*mparams)["ref"].as_object()["name"] = p->upstream_name;
      }
    } else if (type == "ref/resource") {
      route = catalog.route_resource(target);
      if (route && !binding_visible(s, route->binding)) route.reset();
    }
    if (!route) {
      return fail(rpc::kInvalidParams,
                  "completion/complete: no prompt or resource template '" + target + "'");
    }
  } else {  // resources/read, resources/subscribe, resources/unsubscribe
    route = catalog.route_resource(target);
    if (!route || !binding_visible(s, route->binding)) {
      return fail(s.stateless ? rpc::kInvalidParams : rpc::kResourceNotFound,
                  "Resource not found: '" + target + "'", json::object{{"uri", target}});
    }
  }

  const ConnectorRef& connector = route->binding->connector;
  const std::string key = connector.describe() + "/" + route->server;
  if (connector.kind == proto::ConnectorKind::kSandbox && !s.streams.count(key)) {
    if (auto lost = s.lost.find(key); lost != s.lost.end()) {
      const std::string text = "The sandbox session of this MCP session is gone: " + lost->second +
                               ". Its workspace, files and shell state are lost; call again to "
                               "start a new sandbox session.";
      s.lost.erase(lost);
      if (method == "tools/call") {
        return answer_here(rpc::make_result(msg.id(), tool_error(text)));
      }
      return fail(rpc::kUpstreamUnavailable, text);
    }
  }
  if (s.calls.count(request)) {
    return fail(rpc::kInvalidRequest, "request id is already in use in this session");
  }
  std::string error;
  Stream* st = stream_for(s, *route, error, out);
  if (!st) {
    refusal = error;
    return fail(rpc::kUpstreamUnavailable, method + " '" + target + "' is unavailable: " + error);
  }
  Call& c = s.calls[request];
  c.agent_id = msg.id();
  c.key = request;
  c.exchange = exchange;
  c.method = method;
  c.target = target;
  c.stream = st->key;
  c.stream_serial = st->serial;
  c.connector = st->connector;
  c.server = st->server;
  c.binding = route->binding->name;
  c.timeout = route->binding->timeout;
  c.started = now;
  c.deadline = now + c.timeout;
  c.hard_deadline = now + route->binding->max_timeout;
  c.bytes_in = bytes;
  c.upstream_id = msg.id();
  json::object* meta = nullptr;
  if (mparams) {
    if (auto* m = mparams->if_contains("_meta"); m && m->is_object()) meta = &m->as_object();
  }
  if (s.stateless) {
    c.modern = true;
    if (meta) {
      if (auto* caps = meta->if_contains(kMetaCapabilities); caps && caps->is_object()) {
        c.client_caps = caps->as_object();
      }
    }
    c.upstream_id = own_id;
    msg.body["id"] = c.upstream_id;
    exchanges_[exchange] = {s.id, request};
    if (meta) {
      if (auto* level = meta->if_contains(kMetaLogLevel); level && level->is_string()) {
        c.log_level = std::string(level->as_string());
      }
      // The private server speaks an earlier revision: the modern keys are this hop's.
      for (auto it = meta->begin(); it != meta->end();) {
        if (it->key().starts_with(kMetaPrefix)) {
          it = meta->erase(it);
        } else {
          ++it;
        }
      }
    }
  }
  if (meta) {
    if (auto* tok = meta->if_contains("progressToken")) {
      if (s.stateless) {
        // Tokens are the agent's; two of its requests may use the same one.
        c.progress_token = *tok;
        *tok = own_id;
      }
      c.progress_key = rpc::id_key(*tok);
      s.by_progress[c.progress_key] = request;
    }
  }
  if (s.stateless && level_rank(c.log_level) >= 0 && c.log_level != s.log_level) {
    // The upstream session emits from the most recent level asked; each call filters its own.
    s.log_level = c.log_level;
    if (auto it = s.streams.find(c.stream); it != s.streams.end()) set_level(s, it->second, out);
  }
  send(s, c.stream, msg.body, out);
  out.push_back(ArmDeadline{c.deadline});
}

// The session's stream to the route's server, opened when it has none. Null when policy
// refuses it (`error` says why: the binding maps no credential to this agent).
GatewayCore::Stream* GatewayCore::stream_for(Session& s, const Route& r, std::string& error,
                                             Out& out) {
  const ConnectorRef& connector = r.binding->connector;
  const std::string key = connector.describe() + "/" + r.server;
  if (auto it = s.streams.find(key); it != s.streams.end()) return &it->second;
  // A per-agent credential is chosen here by name; the tunnel holds and injects the value.
  const auto credential = r.binding->credential_for(s.agent);
  if (!credential) {
    std::string mapped;
    for (const auto& [a, c] : r.binding->agent_credentials) {
      mapped += (mapped.empty() ? "" : ", ") + a;
    }
    error = "binding '" + r.binding->name + "' maps no credential to agent '" + s.agent +
            "' (it maps: " + mapped + ")";
    return nullptr;
  }
  proto::McpStreamOpen open{.server = r.server,
                            .agent = s.agent,
                            .session = s.tag,
                            .client = {{"protocolVersion", s.version}},
                            .credential = *credential,
                            .stateless = s.stateless};
  if (auto* c = s.client.if_contains("capabilities")) open.client["capabilities"] = *c;
  if (auto* c = s.client.if_contains("clientInfo")) open.client["clientInfo"] = *c;
  out.push_back(OpenUpstream{s.id, key, connector, proto::serialize(open)});
  Stream& st = s.streams[key];
  st.key = key;
  st.serial = s.next_stream_serial++;
  st.connector = connector;
  st.server = r.server;
  if (!s.log_level.empty()) set_level(s, st, out);
  return &st;
}

void GatewayCore::set_level(Session& s, Stream& st, Out& out) {
  const json::value id = json::string("airlock-" + std::to_string(s.next_internal++));
  st.internal_ids.insert(rpc::id_key(id));
  send(s, st.key, rpc::make_request(id, "logging/setLevel", json::object{{"level", s.log_level}}),
       out);
}

// ---- server streams ------------------------------------------------------------------------

Effects GatewayCore::upstream_line(const std::string& id, const std::string& stream,
                                   std::string_view line, Clock::time_point now) {
  Out out;
  auto sit = sessions_.find(id);
  if (sit == sessions_.end()) return out;
  Session& s = *sit->second;
  auto stit = s.streams.find(stream);
  if (stit == s.streams.end()) return out;
  Stream& st = stit->second;
  proto::McpEnvelope env;
  std::string error;
  if (!proto::parse_envelope(line, env, error)) return out;  // the shell logs why
  auto msg = rpc::classify(std::move(env.message), error);
  if (!msg) return out;
  auto related_call = [&]() -> Call* {
    if (!env.related) return nullptr;
    Call* c = s.call(rpc::id_key(*env.related));
    return c && c->stream == stream ? c : nullptr;
  };
  switch (msg->kind) {
    case rpc::Kind::kResponse: {
      const std::string key = rpc::id_key(msg->id());
      if (st.internal_ids.erase(key)) break;
      Call* c = s.call(key);
      if (!c || c->stream != stream) break;  // timed out or cancelled
      c->redactions += env.redactions;
      complete(s, key, std::move(msg->body), now, out);
      break;
    }
    case rpc::Kind::kNotification: {
      if (Call* c = related_call()) c->redactions += env.redactions;
      const auto method = msg->method();
      if (method == "notifications/progress") {
        auto* p = msg->params();
        const json::value* token = p ? p->if_contains("progressToken") : nullptr;
        if (token) {
          auto it = s.by_progress.find(rpc::id_key(*token));
          if (it != s.by_progress.end()) {
            if (Call* c = s.call(it->second)) {
              // Progress extends the deadline, up to the binding's hard maximum.
              c->deadline = std::min(now + c->timeout, c->hard_deadline);
              if (c->modern) msg->body["params"].as_object()["progressToken"] = c->progress_token;
              to_call(s, *c, msg->body, false, out);
              break;
            }
          }
        }
        to_agent(s, 0, msg->body, false, out);
        break;
      }
      if (method == "notifications/tools/list_changed" ||
          method == "notifications/prompts/list_changed" ||
          method == "notifications/resources/list_changed") {
        break;  // the connector refreshes its inventory; the catalog tells sessions
      }
      if (method == "notifications/cancelled") {
        // The server withdrew one of its own requests to the agent.
        auto* p = msg->params();
        const json::value* rid = p ? p->if_contains("requestId") : nullptr;
        if (!rid) break;
        auto it = s.server_request_ids.find(stream + "|" + rpc::id_key(*rid));
        if (it == s.server_request_ids.end()) break;
        msg->body["params"].as_object()["requestId"] = it->second;
      }
      if (Call* c = related_call()) {
        if (c->modern && method == "notifications/message") {
          // Only to a call that asked for log messages, from its level up.
          auto* p = msg->params();
          const int rank = level_rank(p ? str_of(p, "level") : "");
          if (level_rank(c->log_level) < 0 || rank < level_rank(c->log_level)) break;
        }
        to_call(s, *c, msg->body, false, out);
      } else {
        to_agent(s, 0, msg->body, false, out);
      }
      break;
    }
    case rpc::Kind::kRequest: {
      if (Call* c = related_call()) c->redactions += env.redactions;
      const auto method = msg->method();
      const char* needs = method == "sampling/createMessage" ? "sampling"
                          : method == "elicitation/create"   ? "elicitation"
                          : method == "roots/list"           ? "roots"
                                                             : nullptr;
      if (s.stateless) {
        // A modern agent is asked through its call's answer (input_required), if its request
        // declared the capability; the server's request waits for the agent's retry.
        Call* c = related_call();
        if (!c) {
          for (auto& [k, call] : s.calls) {
            if (call.stream == stream) c = &call;
          }
        }
        if (!needs || !c || !c->client_caps.contains(needs)) {
          send(s, stream,
               rpc::make_error(msg->id(), rpc::kMethodNotFound,
                               c ? "the agent's request did not declare the " +
                                       std::string(needs ? needs : method) + " capability"
                                 : "the agent speaks MCP 2026-07-28 and can be asked only "
                                   "during a call"),
               out);
          if (needs && c) refuse_for_capability(s, *c, needs, now, out);
          break;
        }
        const std::string key = "input-" + std::to_string(c->next_input++);
        const json::value* p = msg->body.if_contains("params");
        c->inputs[key] =
            Call::Input{msg->id(), std::string(method),
                        p && p->is_object() ? p->as_object() : json::object{}, now, line.size()};
        if (c->exchange != 0) ask_agent(s, *c, out);
        break;
      }
      if (needs && !s.client_supports(needs)) {
        send(s, stream,
             rpc::make_error(msg->id(), rpc::kMethodNotFound,
                             "the agent's MCP client does not support " + std::string(needs)),
             out);
        break;
      }
      const json::value agent_id =
          json::string("airlock-srv-" + std::to_string(s.next_server_request++));
      Call* c = related_call();
      ServerRequest pending{stream, st.serial, msg->id()};
      pending.method = std::string(method);
      pending.connector = st.connector.id();
      pending.server = st.server;
      if (c) pending.during = c->target;
      pending.started = now;
      pending.bytes_out = line.size();
      s.server_requests[rpc::id_key(agent_id)] = std::move(pending);
      s.server_request_ids[stream + "|" + rpc::id_key(msg->id())] = agent_id;
      msg->body["id"] = agent_id;
      if (!c) {
        // Without a relation, any open call on this stream is the best path; else GET.
        for (auto& [k, call] : s.calls) {
          if (call.stream == stream) c = &call;
        }
      }
      if (c) {
        to_call(s, *c, msg->body, false, out);
      } else {
        to_agent(s, 0, msg->body, false, out);
      }
      break;
    }
  }
  return out;
}

Effects GatewayCore::upstream_closed(const std::string& id, const std::string& stream,
                                     const StreamEnd& end, Clock::time_point now) {
  Out out;
  auto sit = sessions_.find(id);
  if (sit == sessions_.end()) return out;
  Session& s = *sit->second;
  auto stit = s.streams.find(stream);
  if (stit == s.streams.end()) return out;
  const Stream st = std::move(stit->second);
  s.streams.erase(stit);
  using Kind = StreamEnd::Kind;
  // A stateless context's sandbox stream holds no sandbox (its sandboxes are named by handle,
  // and the sandbox agent says so when one is gone): nothing to report as lost.
  if (st.connector.kind == proto::ConnectorKind::kSandbox && !s.stateless &&
      (end.kind == Kind::kEnded || end.kind == Kind::kLinkLost)) {
    s.lost[stream] =
        end.kind == Kind::kLinkLost
            ? st.connector.describe() + " disconnected (its agent restarted or its link was lost)"
            : end.why;
  }
  std::vector<std::string> affected;
  for (const auto& [k, c] : s.calls) {
    if (c.stream == stream) affected.push_back(k);
  }
  for (const auto& k : affected) {
    Call& c = s.calls.at(k);
    json::object answer;
    switch (end.kind) {
      case Kind::kNeverOpened:
        answer = rpc::make_error(c.agent_id, rpc::kUpstreamUnavailable,
                                 c.method + " '" + c.target + "' is unavailable: " + end.why);
        break;
      case Kind::kRefused:
        // Refused before anything ran (a sandbox with every session in use): the reason is
        // the answer; a tool call gets it as a tool error.
        answer = c.method == "tools/call"
                     ? rpc::make_result(c.agent_id, tool_error(end.why))
                     : rpc::make_error(c.agent_id, rpc::kUpstreamUnavailable, end.why);
        break;
      case Kind::kLinkLost:
        answer = rpc::make_error(c.agent_id, rpc::kUpstreamUnavailable,
                                 st.connector.describe() + " disconnected while " + c.method +
                                     " '" + c.target + "' was in flight; its outcome is unknown");
        break;
      case Kind::kEnded:
        answer = rpc::make_error(c.agent_id, rpc::kUpstreamUnavailable,
                                 "the session with server '" + st.server + "' on " +
                                     st.connector.describe() + " ended while " + c.method + " '" +
                                     c.target + "' was in flight: " + end.why);
        break;
    }
    complete(s, k, std::move(answer), now, out);
  }
  // Requests the server made of the agent stay: the agent's answer is still audited.
  return out;
}

// ---- time and ends -------------------------------------------------------------------------

Effects GatewayCore::time_passed(Clock::time_point now) {
  Out out;
  for (auto sit = sessions_.begin(); sit != sessions_.end();) {
    Session& s = *sit->second;
    std::vector<std::string> expired;
    for (const auto& [k, c] : s.calls) {
      if (c.deadline <= now) expired.push_back(k);
    }
    for (const auto& k : expired) {
      Call& c = s.calls.at(k);
      // Cancel it at the server and answer the agent.
      send(s, c.stream,
           rpc::make_notification(
               "notifications/cancelled",
               json::object{{"requestId", c.upstream_id}, {"reason", "deadline exceeded"}}),
           out);
      c.end_class = "timeout";
      json::object answer = rpc::make_error(
          c.agent_id, c.modern ? rpc::kUpstreamUnavailable : rpc::kRequestTimeout,
          c.method + " '" + c.target + "' timed out after " + std::to_string(c.timeout.count()) +
              " ms without an answer (binding '" + c.binding +
              "' timeout); the server was asked to cancel it");
      complete(s, k, std::move(answer), now, out);
    }
    const bool busy = !s.calls.empty() || s.listening || !s.listeners.empty();
    if (!busy && now - s.last_active > limits_.session_idle_timeout) {
      close_session(s, "idle for longer than mcp.session_idle_timeout", now, out);
      sit = sessions_.erase(sit);
      continue;
    }
    ++sit;
  }
  if (auto next = next_deadline()) out.push_back(ArmDeadline{*next});
  return out;
}

void GatewayCore::close_session(Session& s, const std::string& why, Clock::time_point now,
                                Out& out) {
  std::vector<std::string> keys;
  for (const auto& [k, c] : s.calls) keys.push_back(k);
  for (const auto& k : keys) {
    Call& c = s.calls.at(k);
    c.end_class = "session_ended";
    complete(s, k, rpc::make_error(c.agent_id, rpc::kUpstreamUnavailable, "session ended: " + why),
             now, out);
  }
  for (const auto& [x, l] : s.listeners) {
    // A subscription the server ends is answered, so that the agent knows it was not lost.
    to_agent(
        s, x,
        rpc::make_result(l.id, json::object{{"_meta", json::object{{kMetaSubscription, l.id}}}}),
        true, out);
    exchanges_.erase(x);
  }
  s.listeners.clear();
  for (const auto& [k, st] : s.streams) out.push_back(CloseUpstream{s.id, k});
  s.streams.clear();
  out.push_back(SessionEnded{s.id});
}

Effects GatewayCore::end_session(const std::string& id, const std::string& why,
                                 Clock::time_point now) {
  Out out;
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return out;
  close_session(*it->second, why, now, out);
  sessions_.erase(it);
  return out;
}

Effects GatewayCore::end_all(const std::string& why, Clock::time_point now) {
  Out out;
  for (auto& [id, s] : sessions_) close_session(*s, why, now, out);
  sessions_.clear();
  return out;
}

bool GatewayCore::touch(const std::string& id, const std::string& agent, Clock::time_point now) {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->agent != agent || it->second->stateless) return false;
  it->second->last_active = now;
  return true;
}

void GatewayCore::listening(const std::string& id, bool on) {
  if (auto it = sessions_.find(id); it != sessions_.end()) it->second->listening = on;
}

std::optional<Clock::time_point> GatewayCore::next_deadline() const {
  std::optional<Clock::time_point> next;
  for (const auto& [id, s] : sessions_) {
    for (const auto& [k, c] : s->calls) {
      if (!next || c.deadline < *next) next = c.deadline;
    }
  }
  return next;
}

size_t GatewayCore::calls_of(const std::string& id) const {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? 0 : it->second->calls.size();
}

// ---- the modern revision (2026-07-28) -------------------------------------------------------

bool GatewayCore::session_version(std::string_view version) { return supported_version(version); }

bool GatewayCore::is_modern(const rpc::Message& msg, std::string_view header_version) {
  if (header_version == kModern) return true;
  const json::object* params = msg.params();
  const json::value* meta = params ? params->if_contains("_meta") : nullptr;
  return meta && meta->is_object() && meta->as_object().contains(kMetaVersion);
}

const std::vector<std::string>& GatewayCore::supported_versions() {
  static const std::vector<std::string> versions{std::string(kModern), "2025-11-25", "2025-06-18",
                                                 "2025-03-26"};
  return versions;
}

Effects GatewayCore::refuse_by_headers(const Agent& agent, const RequestHeaders& headers,
                                       uint64_t exchange, Clock::time_point) {
  Out out;
  if ((headers.method != "tools/call" && headers.method != "prompts/get") || headers.name.empty() ||
      any_glob_match(agent.scope, headers.name)) {
    return out;
  }
  const std::string what = headers.method == "tools/call" ? "tool" : "prompt";
  out.push_back(ToAgent{
      "", exchange,
      json::serialize(rpc::make_error(nullptr, rpc::kInvalidParams,
                                      "Unknown " + what + " '" + headers.name +
                                          "': not available to this agent key (refused from the "
                                          "Mcp-Name header)")),
      true, 403});
  AuditRecord r;
  r.type = AuditType::kToolRefused;
  r.actor = agent.name;
  r.method = headers.method;
  r.target = headers.name;
  r.outcome = "refused";
  r.error_class = "policy";
  r.detail = json::object{{"reason", "outside the agent key's scope"}};
  out.push_back(Record{std::move(r), true});
  return out;
}

// The agent's context for modern requests: created on its first, ended when idle.
GatewayCore::Session& GatewayCore::context_of(const Agent& agent, Clock::time_point now,
                                              Out& out) {
  const std::string id = "agent/" + agent.name;
  auto& slot = sessions_[id];
  if (!slot || slot->scope != agent.scope) {
    if (slot) {
      // The agent's keys changed scope: what the old context listed no longer holds. Its
      // calls are answered, its listeners told, its streams closed, as for any session.
      close_session(*slot, "the agent's scope changed", now, out);
    }
    slot = std::make_unique<Session>();
    Session& s = *slot;
    s.id = id;
    s.tag = "agent-" + agent.name;
    s.agent = agent.name;
    s.scope = agent.scope;
    s.stateless = true;
    s.initialized = true;
    // The private server behind the connector speaks an earlier revision. It may ask for
    // elicitation, sampling and roots during a call: the agent is asked through an
    // input_required answer when its request declared the capability, and refused otherwise.
    s.version = kLatest;
    s.client = json::object{
        {"protocolVersion", kLatest},
        {"capabilities", json::object{{"elicitation", json::object{}},
                                      {"sampling", json::object{}},
                                      {"roots", json::object{}}}},
        {"clientInfo", json::object{{"name", "airlock-gateway"}, {"version", AIRLOCK_VERSION}}}};
    s.tools_sig = signature(visible_tools(s));
    s.prompts_sig = signature(visible_prompts(s));
    s.resources_sig = signature(visible_resources(s));
  }
  slot->last_active = now;
  return *slot;
}

Effects GatewayCore::modern_request(const Agent& agent, const RequestHeaders& headers,
                                    rpc::Message msg, size_t bytes, uint64_t exchange,
                                    Clock::time_point now) {
  Out out;
  auto fail = [&](int http, int code, const std::string& text, json::value data = nullptr) {
    out.push_back(ToAgent{"", exchange,
                          json::serialize(rpc::make_error(msg.id(), code, text, std::move(data))),
                          true, http});
    return out;
  };
  const json::object* params = msg.params();
  const json::value* m = params ? params->if_contains("_meta") : nullptr;
  const json::object* meta = m && m->is_object() ? &m->as_object() : nullptr;
  const json::value* version = meta ? meta->if_contains(kMetaVersion) : nullptr;
  const json::value* caps = meta ? meta->if_contains(kMetaCapabilities) : nullptr;
  if (!version || !version->is_string() || !caps || !caps->is_object()) {
    std::string missing = !meta ? "params._meta" : "";
    if (meta && (!version || !version->is_string())) missing += std::string(kMetaVersion);
    if (meta && (!caps || !caps->is_object())) {
      missing += (missing.empty() ? "" : " and ") + std::string(kMetaCapabilities);
    }
    return fail(400, rpc::kInvalidParams,
                "Invalid params: a request without a session must carry its protocol version and "
                "client capabilities in params._meta (missing: " +
                    missing + ")");
  }
  const std::string requested(version->as_string());
  const std::string method(msg.method());
  // The headers mirror the body so that intermediaries can act on them: they must agree.
  auto mismatch = [&](const std::string& text) {
    return fail(400, rpc::kHeaderMismatch, "Header mismatch: " + text);
  };
  if (headers.protocol_version.empty())
    return mismatch("the MCP-Protocol-Version header is missing");
  if (headers.protocol_version != requested) {
    return mismatch("MCP-Protocol-Version header '" + headers.protocol_version +
                    "' does not match _meta " + std::string(kMetaVersion) + " '" + requested + "'");
  }
  if (headers.method.empty()) return mismatch("the Mcp-Method header is missing");
  if (headers.method != method) {
    return mismatch("Mcp-Method header '" + headers.method +
                    "' does not match the body's method '" + method + "'");
  }
  if (const std::string_view field = mcp::name_field(method); !field.empty()) {
    const std::string body_name = str_of(params, field);
    if (headers.name.empty()) return mismatch("the Mcp-Name header is missing");
    if (headers.name != body_name) {
      return mismatch("Mcp-Name header '" + headers.name + "' does not match the body's '" +
                      body_name + "'");
    }
  }
  if (method == "tools/call") {
    if (std::string why = param_mismatch(headers, params); !why.empty()) return mismatch(why);
  }
  if (requested != kModern) {
    json::array supported;
    for (const auto& v : supported_versions()) supported.push_back(json::string(v));
    return fail(400, rpc::kUnsupportedProtocolVersion,
                "Unsupported protocol version '" + requested +
                    "': without a session airlockd serves 2026-07-28 (earlier revisions begin "
                    "with initialize)",
                json::object{{"supported", std::move(supported)}, {"requested", requested}});
  }
  Session& s = context_of(agent, now, out);
  modern(s, std::move(msg), bytes, exchange, now, out);
  return out;
}

// A tools/call's Mcp-Param-* headers against its arguments, for the parameters the tool's
// inputSchema marks with x-mcp-header: empty when they agree. A tool that is not in the catalog
// (routing says so) or whose annotations are invalid has nothing to check.
std::string GatewayCore::param_mismatch(const RequestHeaders& headers,
                                        const json::object* params) const {
  const std::string name = str_of(params, "name");
  const ExposedItem* tool = view_.catalog->tool(name);
  if (!tool || !tool->mirrors_arguments) return "";
  const json::value* schema = tool->definition.if_contains("inputSchema");
  if (!schema || !schema->is_object()) return "";
  const json::value* args = params->if_contains("arguments");
  std::vector<mcp::HeaderParam> expected;
  std::string invalid;
  if (!mcp::header_params(schema->as_object(), args ? *args : json::value(json::object{}), expected,
                          invalid)) {
    return "";
  }
  for (const auto& p : expected) {
    const std::string* sent = nullptr;
    for (const auto& [k, v] : headers.params) {
      if (boost::algorithm::iequals(k, p.header)) sent = &v;
    }
    const std::string header = "Mcp-Param-" + p.header;
    if (!p.value) {
      if (sent) return header + " header is sent but the call has no such argument";
      continue;
    }
    if (!sent) return "the " + header + " header is missing (the call gives that argument)";
    auto decoded = mcp::decode_header_value(*sent);
    if (!decoded) return header + " is not valid =?base64?…?= text";
    if (*decoded != *p.value) {
      return header + " header '" + *decoded + "' does not match the argument's '" + *p.value + "'";
    }
  }
  return "";
}

void GatewayCore::modern(Session& s, rpc::Message msg, size_t bytes, uint64_t exchange,
                         Clock::time_point now, Out& out) {
  const std::string method(msg.method());
  if (method == "server/discover") {
    json::array versions;
    for (const auto& v : supported_versions()) versions.push_back(json::string(v));
    json::object result{
        {"supportedVersions", std::move(versions)},
        {"capabilities", json::object{{"tools", json::object{{"listChanged", true}}},
                                      {"resources", json::object{{"listChanged", true}}},
                                      {"prompts", json::object{{"listChanged", true}}},
                                      {"completions", json::object{}},
                                      {"logging", json::object{}}}},
        {"instructions",
         "Tools from private systems, reached through Airlock. Credentials stay at the edge."},
        // The same for every caller: a shared cache may keep it.
        {"ttlMs", kListTtlMs},
        {"cacheScope", "public"},
        {"_meta", json::object{{kMetaServerInfo, server_info()}}}};
    to_agent(s, exchange, rpc::make_result(msg.id(), std::move(result)), true, out);
    return;
  }
  if (method == "subscriptions/listen") return listen(s, msg, exchange, out);
  if (method == "tools/list" || method == "prompts/list" || method == "resources/list" ||
      method == "resources/templates/list" || method == "tools/call" || method == "prompts/get" ||
      method == "resources/read" || method == "completion/complete") {
    return agent_request(s, std::move(msg), bytes, exchange, now, out);
  }
  // Gone in this revision: ping, logging/setLevel, initialize, resources/(un)subscribe.
  out.push_back(ToAgent{
      s.id, exchange,
      json::serialize(rpc::make_error(msg.id(), rpc::kMethodNotFound,
                                      "Method not found: " + method + " (in MCP 2026-07-28)")),
      true, 404});
}

void GatewayCore::listen(Session& s, const rpc::Message& msg, uint64_t exchange, Out& out) {
  const json::object* params = msg.params();
  const json::value* n = params ? params->if_contains("notifications") : nullptr;
  const json::object* filter = n && n->is_object() ? &n->as_object() : nullptr;
  auto wants = [&](std::string_view key) {
    const json::value* v = filter ? filter->if_contains(key) : nullptr;
    return v && v->is_bool() && v->as_bool();
  };
  Session::Listener l{msg.id(), wants("toolsListChanged"), wants("promptsListChanged"),
                      wants("resourcesListChanged")};
  // What it agreed to: resource updates are not relayed (a private server's subscriptions
  // belong to its own session).
  json::object agreed;
  if (l.tools) agreed["toolsListChanged"] = true;
  if (l.prompts) agreed["promptsListChanged"] = true;
  if (l.resources) agreed["resourcesListChanged"] = true;
  to_agent(s, exchange,
           rpc::make_notification("notifications/subscriptions/acknowledged",
                                  json::object{{"_meta", json::object{{kMetaSubscription, l.id}}},
                                               {"notifications", std::move(agreed)}}),
           false, out);
  s.listeners[exchange] = std::move(l);
  exchanges_[exchange] = {s.id, ""};
}

Effects GatewayCore::exchange_gone(uint64_t exchange, Clock::time_point now) {
  Out out;
  auto it = exchanges_.find(exchange);
  if (it == exchanges_.end()) return out;
  const auto [id, key] = it->second;
  exchanges_.erase(it);
  auto sit = sessions_.find(id);
  if (sit == sessions_.end()) return out;
  Session& s = *sit->second;
  if (key.empty()) {
    s.listeners.erase(exchange);
    return out;
  }
  Call* c = s.call(key);
  if (!c) return out;
  // Closing the response stream is how a modern agent cancels.
  send(s, c->stream,
       rpc::make_notification("notifications/cancelled",
                              json::object{{"requestId", c->upstream_id},
                                           {"reason", "the agent closed the response stream"}}),
       out);
  c->end_class = "cancelled";
  complete(s, key,
           rpc::make_error(c->agent_id, rpc::kUpstreamUnavailable, "cancelled by the client"), now,
           out);
  return out;
}

// A modern call whose server asked for what the agent's request did not declare: the call is
// cancelled at the server and answered as that revision says, -32021 naming the capability
// (HTTP 400 unless the answer is already streaming).
void GatewayCore::refuse_for_capability(Session& s, Call& c, const std::string& capability,
                                        Clock::time_point now, Out& out) {
  std::string key;
  for (const auto& [k, call] : s.calls) {
    if (&call == &c) key = k;
  }
  send(s, c.stream,
       rpc::make_notification(
           "notifications/cancelled",
           json::object{{"requestId", c.upstream_id},
                        {"reason", "the agent's request did not declare " + capability}}),
       out);
  json::object caps{{capability, json::object{}}};
  complete(
      s, key,
      rpc::make_error(c.agent_id, rpc::kMissingClientCapability,
                      c.method + " '" + c.target + "' needs the client capability '" + capability +
                          "', which the request did not declare in _meta "
                          "io.modelcontextprotocol/clientCapabilities",
                      json::object{{"requiredCapabilities", std::move(caps)}}),
      now, out, 400);
}

// ---- input_required: a session-based server's questions for a modern agent -------------------

// The requestState of an input_required result: what it answers (agent, context, call, round,
// method, target) and until when, as JSON, then its HMAC-SHA256 under the shell's key; each
// part base64url. Nothing in it is secret; all of it is checked on the retry.
std::string GatewayCore::seal_state(const Session& s, const Call& c) const {
  const std::string payload =
      json::serialize(json::object{{"a", s.agent},
                                   {"s", s.id},
                                   {"c", c.key},
                                   {"r", c.round},
                                   {"m", c.method},
                                   {"t", c.target},
                                   {"e", std::chrono::duration_cast<std::chrono::milliseconds>(
                                             c.hard_deadline.time_since_epoch())
                                             .count()}});
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), limits_.state_key.data(), static_cast<int>(limits_.state_key.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), mac, &len);
  return base64(payload, true, false) + "." +
         base64(std::string_view(reinterpret_cast<const char*>(mac), len), true, false);
}

// Answers the call's current request with an input_required result naming everything the
// server is waiting for; the call waits, detached, for the agent's retry.
void GatewayCore::ask_agent(Session& s, Call& c, Out& out) {
  json::object requests;
  for (const auto& [key, in] : c.inputs) {
    requests[key] = json::object{{"method", in.method}, {"params", in.params}};
  }
  ++c.round;
  json::object result{{"resultType", "input_required"},
                      {"inputRequests", std::move(requests)},
                      {"requestState", seal_state(s, c)}};
  to_call(s, c, rpc::make_result(c.agent_id, std::move(result)), true, out);
  exchanges_.erase(c.exchange);
  c.exchange = 0;
}

// A retry that carries a requestState: the answers go to the server under its own ids, and the
// call, still in flight there, answers this request instead.
void GatewayCore::resume(Session& s, rpc::Message msg, size_t bytes, uint64_t exchange,
                         Clock::time_point now, Out& out) {
  const json::object& params = *msg.params();
  // Refused, and audited as a refusal: a state that does not verify may be an attempt.
  auto refuse = [&](const std::string& why) {
    const json::object answer =
        rpc::make_error(msg.id(), rpc::kInvalidParams,
                        "Invalid params: requestState " + why +
                            "; call again without requestState and inputResponses");
    to_agent(s, exchange, answer, true, out);
    AuditRecord r;
    r.type = AuditType::kToolRefused;
    r.actor = s.agent;
    r.session = s.tag;
    r.method = std::string(msg.method());
    r.target = target_of(msg);
    r.bytes_in = bytes;
    r.outcome = "refused";
    r.error_class = "policy";
    r.detail = json::object{{"reason", "requestState " + why}};
    out.push_back(Record{std::move(r), true});
  };
  const json::value& state = params.at("requestState");
  const std::string_view text = state.is_string() ? std::string_view(state.as_string()) : "";
  const auto dot = text.find('.');
  auto payload = dot == std::string_view::npos ? std::nullopt : from_base64(text.substr(0, dot));
  auto mac = dot == std::string_view::npos ? std::nullopt : from_base64(text.substr(dot + 1));
  if (!payload || !mac) return refuse("is not one airlockd issued");
  unsigned char expect[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), limits_.state_key.data(), static_cast<int>(limits_.state_key.size()),
       reinterpret_cast<const unsigned char*>(payload->data()), payload->size(), expect, &len);
  if (mac->size() != len || CRYPTO_memcmp(mac->data(), expect, len) != 0) {
    return refuse("was altered (its signature does not match)");
  }
  boost::system::error_code ec;
  const json::value v = json::parse(*payload, ec);
  const json::object* o = !ec && v.is_object() ? &v.as_object() : nullptr;
  if (!o) return refuse("is not one airlockd issued");
  auto field = [&](const char* k) { return str_of(o, k); };
  const json::value* round = o->if_contains("r");
  const json::value* expiry = o->if_contains("e");
  if (field("a") != s.agent || field("s") != s.id) {
    return refuse("belongs to another agent's request");
  }
  const std::string method(msg.method());
  if (field("m") != method || field("t") != target_of(msg)) {
    return refuse("belongs to another request (" + field("m") + " '" + field("t") + "')");
  }
  if (!expiry || !expiry->is_int64() ||
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() >
          expiry->as_int64()) {
    return refuse("has expired");
  }
  Call* c = s.call(field("c"));
  if (!c || !c->modern || !round || !round->is_int64() ||
      round->as_int64() != static_cast<int64_t>(c->round) || c->exchange != 0) {
    return refuse(c ? "was already used"
                    : "names a request that has ended (it timed out or failed)");
  }
  const json::value* r = params.if_contains("inputResponses");
  const json::object* responses = r && r->is_object() ? &r->as_object() : nullptr;
  for (auto it = c->inputs.begin(); it != c->inputs.end();) {
    const json::value* answer = responses ? responses->if_contains(it->first) : nullptr;
    if (!answer || !answer->is_object()) {
      ++it;  // asked again below
      continue;
    }
    const json::object response = rpc::make_result(it->second.server_id, answer->as_object());
    out.push_back(Record{
        relayed_record(s.agent, s.tag, it->second.method, c->target, c->connector.id(), c->server,
                       ms_between(it->second.asked, now), bytes, it->second.bytes, response),
        false});
    send(s, c->stream, response, out);
    it = c->inputs.erase(it);
  }
  // This request now waits for the call's answer.
  c->exchange = exchange;
  c->agent_id = msg.id();
  c->bytes_in += bytes;
  exchanges_[exchange] = {s.id, c->key};
  if (!c->inputs.empty()) ask_agent(s, *c, out);  // something is still unanswered
}

}  // namespace airlock::controlplane
