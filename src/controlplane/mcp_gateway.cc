#include "controlplane/mcp_gateway.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <deque>
#include <set>
#include <unordered_map>

#include "common/jsonrpc.h"
#include "common/stream_contract.h"
#include "common/token.h"
#include "controlplane/access.h"

namespace airlock::controlplane {
namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
using Clock = std::chrono::steady_clock;
namespace rpc = jsonrpc;

const char* const kVersions[] = {"2025-11-25", "2025-06-18", "2025-03-26"};
constexpr const char* kLatest = "2025-11-25";

bool supported_version(std::string_view v) {
  for (const char* k : kVersions) {
    if (v == k) return true;
  }
  return false;
}

std::string line_of(const json::object& o) { return json::serialize(o) + "\n"; }

// A tools/call result that reports `text` as the tool's error.
json::object tool_error(std::string_view text) {
  return json::object{
      {"content", json::array{json::object{{"type", "text"}, {"text", text}}}},
      {"isError", true}};
}

HttpResponse rpc_http(int status, const json::object& body) {
  return HttpResponse::json(status, json::serialize(body));
}

HttpResponse rpc_error_http(int status, const json::value& id, int code, std::string_view msg) {
  return rpc_http(status, rpc::make_error(id, code, msg));
}

std::string str_of(const json::object* o, std::string_view key) {
  if (!o) return {};
  auto* v = o->if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// ------------------------------------------------------------------------------------------
// SSE event logs. Every stream a session has (the GET stream "g", and one per POST that
// switched to SSE, "p<N>") keeps its recent events so that a client reconnecting with
// Last-Event-ID "<stream>-<seq>" gets what it missed.

class EventLog {
 public:
  EventLog(asio::any_io_executor ex, std::string key)
      : key_(std::move(key)), signal_(ex, asio::steady_timer::time_point::max()) {}

  const std::string& key() const { return key_; }
  void push(std::string data) {
    if (finished_) return;
    bytes_ += data.size();
    events_.emplace_back(next_seq_++, std::move(data));
    while (events_.size() > 1 && (events_.size() > kMaxEvents || bytes_ > kMaxBytes)) {
      bytes_ -= events_.front().second.size();
      events_.pop_front();
    }
    signal_.cancel();
  }
  void finish() {
    finished_ = true;
    signal_.cancel();
  }
  bool finished() const { return finished_; }
  uint64_t last_seq() const { return next_seq_ - 1; }
  // First event after `seq`, if it is still kept.
  const std::pair<uint64_t, std::string>* after(uint64_t seq) const {
    for (const auto& e : events_) {
      if (e.first > seq) return &e;
    }
    return nullptr;
  }
  asio::steady_timer& signal() { return signal_; }
  // Each new consumer takes over; an older one ends.
  uint64_t attach() {
    signal_.cancel();
    return ++generation_;
  }
  uint64_t generation() const { return generation_; }
  bool attached = false;
  Clock::time_point finished_at{};

 private:
  static constexpr size_t kMaxEvents = 1000;
  static constexpr size_t kMaxBytes = 8 * 1024 * 1024;
  std::string key_;
  std::deque<std::pair<uint64_t, std::string>> events_;
  size_t bytes_ = 0;
  uint64_t next_seq_ = 1;
  bool finished_ = false;
  uint64_t generation_ = 0;
  asio::steady_timer signal_;
};

// One HTTP response reading an EventLog from a position.
class SseConsumer final : public BodyStream {
 public:
  SseConsumer(std::shared_ptr<EventLog> log, uint64_t from, std::chrono::milliseconds keepalive,
              long retry_ms)
      : log_(std::move(log)), cursor_(from), keepalive_(keepalive), retry_ms_(retry_ms) {
    generation_ = log_->attach();
    log_->attached = true;
  }
  ~SseConsumer() override {
    if (log_->generation() == generation_) log_->attached = false;
  }

  asio::awaitable<std::optional<std::string>> next() override {
    if (!primed_) {
      primed_ = true;
      // Priming event: an id to resume from, and how long to wait before reconnecting.
      co_return rpc::format_sse(log_->key() + "-" + std::to_string(cursor_), "", retry_ms_);
    }
    for (;;) {
      if (log_->generation() != generation_) co_return std::nullopt;  // superseded
      if (auto* e = log_->after(cursor_)) {
        cursor_ = e->first;
        co_return rpc::format_sse(log_->key() + "-" + std::to_string(e->first), e->second);
      }
      if (log_->finished()) co_return std::nullopt;
      auto& signal = log_->signal();
      signal.expires_after(keepalive_);
      auto [ec] = co_await signal.async_wait(kUseTuple);
      if (!ec) co_return std::string(": keep-alive\n\n");
      signal.expires_at(asio::steady_timer::time_point::max());
    }
  }
  void client_gone() override {
    if (log_->generation() == generation_) log_->attached = false;
  }

 private:
  std::shared_ptr<EventLog> log_;
  uint64_t cursor_;
  uint64_t generation_ = 0;
  std::chrono::milliseconds keepalive_;
  long retry_ms_;
  bool primed_ = false;
};

struct Session;
struct ServerStream;

struct Call {
  Call(asio::any_io_executor ex)
      : wake(ex, asio::steady_timer::time_point::max()), deadline_timer(ex) {}
  json::value agent_id;
  std::string key;  // id_key(agent_id)
  std::string method;
  std::string target;  // tool / prompt / uri, for messages
  std::shared_ptr<ServerStream> up;
  std::shared_ptr<EventLog> sse;  // once the answer switched to SSE
  std::deque<std::string> early;  // messages before that
  bool final_seen = false;
  bool done = false;
  std::string progress_key;
  asio::steady_timer wake;
  Clock::time_point deadline, hard_deadline;
  std::chrono::milliseconds timeout{60000};
  std::string binding;
  asio::steady_timer deadline_timer;
  // For the audit record and the metrics.
  Clock::time_point started = Clock::now();
  uint64_t bytes_in = 0, bytes_out = 0, redactions = 0;
  std::string end_class;  // how it ended when the answer alone does not say ("cancelled")
};

// One agent session's stream with one server of a connector (a tunnel's private server, or a
// sandbox's toolset): the connector holds the matching session on its side.
struct ServerStream {
  std::string key;  // connector/server
  ConnectorRef connector;
  std::string server;
  std::shared_ptr<LinkStream> stream;
  std::shared_ptr<StreamWriter> writer;
  bool alive = true;
  std::set<std::string> internal_ids;  // our own requests, whose answers we swallow
  void send(const json::object& o) { writer->push(line_of(o)); }
};

struct ServerRequest {
  std::weak_ptr<ServerStream> up;
  json::value original_id;
  // For the audit record written when the agent answers.
  std::string method, connector, server, during;  // `during`: the call it came in, if any
  Clock::time_point started = Clock::now();
  uint64_t bytes_out = 0;
};

struct Session {
  std::string id, tag, agent;
  std::vector<std::string> scope;
  std::string version;
  json::object client;  // protocolVersion, capabilities, clientInfo
  bool initialized = false;
  bool closed = false;
  std::map<std::string, std::shared_ptr<ServerStream>> server_streams;
  std::map<std::string, std::shared_ptr<Call>> calls;
  std::map<std::string, std::shared_ptr<Call>> by_progress;
  std::map<std::string, ServerRequest> server_requests;   // agent-facing id key -> origin
  std::map<std::string, json::value> server_request_ids;  // stream key + id -> agent id
  uint64_t next_server_request = 1;
  uint64_t next_stream = 1;
  uint64_t next_internal = 1;
  std::shared_ptr<EventLog> get;
  std::map<std::string, std::shared_ptr<EventLog>> logs;  // for resumption
  // Sandbox sessions (workspace, shell) this agent session lost — the sandbox agent restarted,
  // its link went, the session idled out — by stream key: the next call is told so, once.
  std::map<std::string, std::string> lost;
  std::string log_level;
  Clock::time_point last_active = Clock::now();
  std::string tools_sig, prompts_sig, resources_sig;

  bool client_supports(std::string_view cap) const {
    auto* caps = client.if_contains("capabilities");
    return caps && caps->is_object() && caps->as_object().contains(cap);
  }
};

std::string signature(const std::vector<const ExposedItem*>& items) {
  std::string s;
  for (const auto* i : items) s += json::serialize(i->definition) + "\n";
  return s;
}

std::string encode_cursor(size_t offset) { return base64url("o:" + std::to_string(offset)); }

std::optional<size_t> decode_cursor(std::string_view c) {
  // Inverse of base64url for our own short cursors.
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : c) {
    const auto pos = alphabet.find(ch);
    if (pos == std::string::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (out.rfind("o:", 0) != 0 || out.size() < 3 || out.size() > 12) return std::nullopt;
  size_t v = 0;
  for (char ch : out.substr(2)) {
    if (ch < '0' || ch > '9') return std::nullopt;
    v = v * 10 + static_cast<size_t>(ch - '0');
  }
  return v;
}

}  // namespace

struct McpGateway::Impl {
  Impl(asio::any_io_executor e, const AirlockdConfig& c, Host h)
      : ex(e), config(c), host(std::move(h)), sweeper(e) {}

  asio::any_io_executor ex;
  const AirlockdConfig& config;
  Host host;
  OriginPolicy origins;  // set after listen, before serving; read-only afterwards
  // Agent keys found valid, by key id: the stored salted hash (every request is still
  // verified against it) and the agent. Saves two database reads per request; cleared when
  // keys are revoked, and re-read after kKeyCacheTtl in any case.
  struct CachedKey {
    StoredTokenHash hash;
    AgentRecord agent;
    Clock::time_point loaded;
  };
  static constexpr auto kKeyCacheTtl = std::chrono::seconds(30);
  static constexpr size_t kKeyCacheMax = 10000;
  std::unordered_map<std::string, CachedKey> key_cache;
  std::vector<Binding> bindings;
  std::map<ConnectorRef, ConnectorInventory> inventories;  // latest pushed, per connector
  std::shared_ptr<const Catalog> catalog = std::make_shared<Catalog>();
  std::shared_ptr<const std::vector<Binding>> catalog_bindings =
      std::make_shared<std::vector<Binding>>();
  std::map<std::string, std::shared_ptr<Session>> sessions;
  asio::steady_timer sweeper;
  bool stopped = false;
  uint64_t calls_started = 0;
  // Set by record_refusal() while a request is being routed: the reason it was refused.
  std::string refusal;

  // Call metrics (null without a registry).
  prometheus::Family<prometheus::Counter>* m_calls = nullptr;
  prometheus::Family<prometheus::Histogram>* m_latency = nullptr;
  prometheus::Counter* m_bytes_in = nullptr;
  prometheus::Counter* m_bytes_out = nullptr;
  prometheus::Counter* m_redactions = nullptr;
  prometheus::Counter* m_auth_failures = nullptr;

  void register_metrics() {
    if (!host.metrics) return;
    Metrics& m = *host.metrics;
    m_calls = &m.counter("airlock_mcp_calls_total",
                         "Agent requests routed to connectors, by method, tool and outcome.");
    m_latency = &m.histogram("airlock_mcp_call_duration_seconds",
                             "Time from an agent's request to its answer, by method.");
    auto& bytes = m.counter("airlock_mcp_bytes_total",
                            "Bytes of routed requests and their answers, by direction.");
    m_bytes_in = &bytes.Add({{"direction", "from_agent"}});
    m_bytes_out = &bytes.Add({{"direction", "to_agent"}});
    m_redactions = &m.counter("airlock_mcp_call_redactions_total",
                              "Secret occurrences connectors replaced in answers to calls.")
                        .Add({});
    m_auth_failures =
        &m.counter("airlock_auth_failures_total", "Refused or failed authentications, by endpoint.")
             .Add({{"endpoint", "mcp"}});
  }

  static const char* error_class_of(int64_t code) {
    switch (code) {
      // kRequestTimeout shares -32002 with kResourceNotFound: a deadline airlockd enforced
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
      default:
        return "server_error";
    }
  }

  // outcome and error_class from an answer: a JSON-RPC error, a tool error, or a result.
  static void classify(const json::object& answer, AuditRecord& r) {
    if (auto* e = answer.if_contains("error"); e && e->is_object()) {
      r.outcome = "error";
      auto* code = e->as_object().if_contains("code");
      r.error_class = code && code->is_int64() ? error_class_of(code->as_int64()) : "server_error";
      return;
    }
    if (auto* res = answer.if_contains("result"); res && res->is_object()) {
      if (auto* ie = res->as_object().if_contains("isError");
          ie && ie->is_bool() && ie->as_bool()) {
        r.outcome = "tool_error";
        return;
      }
    }
    r.outcome = "ok";
  }

  void observe(AuditRecord&& r) {
    if (m_calls) {
      m_calls->Add({{"method", r.method}, {"tool", r.target}, {"outcome", r.outcome}}).Increment();
      m_latency->Add({{"method", r.method}}, latency_buckets())
          .Observe(static_cast<double>(r.duration_ms) / 1000.0);
      m_bytes_in->Increment(static_cast<double>(r.bytes_in));
      m_bytes_out->Increment(static_cast<double>(r.bytes_out));
      if (r.redactions) m_redactions->Increment(static_cast<double>(r.redactions));
    }
    if (host.audit) host.audit(std::move(r));
  }

  // The audit record of a call that reached a connector, when its answer is final.
  void record_call(const Session& s, const Call& c, const json::object& answer) {
    AuditRecord r;
    r.type = AuditType::kCall;
    r.actor = s.agent;
    r.session = s.tag;
    r.method = c.method;
    r.target = c.target;
    r.binding = c.binding;
    if (c.up) {
      r.connector = c.up->connector.id();
      r.server = c.up->server;
    }
    r.duration_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - c.started).count();
    r.bytes_in = c.bytes_in;
    r.bytes_out = c.bytes_out;
    r.redactions = c.redactions;
    classify(answer, r);
    if (!c.end_class.empty()) r.error_class = c.end_class;
    observe(std::move(r));
  }

  // ---- catalog ------------------------------------------------------------------------------

  std::map<ConnectorRef, ConnectorInventory> live_inventories() const {
    std::map<ConnectorRef, ConnectorInventory> live;
    for (const auto& [c, inv] : inventories) {
      if (host.is_live(c)) live.emplace(c, inv);
    }
    return live;
  }

  void rebuild() {
    auto b = std::make_shared<std::vector<Binding>>(bindings);
    std::vector<std::string> conflicts;
    auto c = std::make_shared<Catalog>(Catalog::build(*b, live_inventories(), conflicts));
    for (const auto& msg : conflicts) spdlog::warn("catalog: {}", msg);
    catalog_bindings = b;  // the catalog's routes point into this vector
    catalog = c;
    for (auto& [id, s] : sessions) notify_list_changes(*s);
  }

  bool in_scope(const Session& s, std::string_view name) const {
    return any_glob_match(s.scope, name);
  }

  std::vector<const ExposedItem*> visible_tools(const Session& s) const {
    std::vector<const ExposedItem*> out;
    for (const auto& t : catalog->tools()) {
      if (in_scope(s, t.name)) out.push_back(&t);
    }
    return out;
  }
  std::vector<const ExposedItem*> visible_prompts(const Session& s) const {
    std::vector<const ExposedItem*> out;
    for (const auto& p : catalog->prompts()) {
      if (in_scope(s, p.name)) out.push_back(&p);
    }
    return out;
  }
  // Resources of a binding are visible to a key that may use something of that binding.
  bool binding_visible(const Session& s, const Binding* b) const {
    if (any_glob_match(s.scope, "*")) return true;
    for (const auto& t : catalog->tools()) {
      if (t.route.binding == b && in_scope(s, t.name)) return true;
    }
    for (const auto& p : catalog->prompts()) {
      if (p.route.binding == b && in_scope(s, p.name)) return true;
    }
    return false;
  }
  std::vector<const ExposedItem*> visible_resources(const Session& s) const {
    std::vector<const ExposedItem*> out;
    for (const auto& r : catalog->resources()) {
      if (binding_visible(s, r.route.binding)) out.push_back(&r);
    }
    return out;
  }

  void notify_list_changes(Session& s) {
    if (!s.initialized || s.closed) return;
    auto push = [&](std::string& sig, std::string now, const char* method) {
      if (sig == now) return;
      sig = std::move(now);
      to_session(s, rpc::make_notification(method, {}));
    };
    push(s.tools_sig, signature(visible_tools(s)), "notifications/tools/list_changed");
    push(s.prompts_sig, signature(visible_prompts(s)), "notifications/prompts/list_changed");
    push(s.resources_sig, signature(visible_resources(s)), "notifications/resources/list_changed");
  }

  // ---- delivery -----------------------------------------------------------------------------

  std::shared_ptr<EventLog> get_log(Session& s) {
    if (!s.get) {
      s.get = std::make_shared<EventLog>(ex, "g");
      s.logs["g"] = s.get;
    }
    return s.get;
  }

  // Something for the agent that belongs to no call: the GET stream (kept until the agent
  // opens it, bounded).
  void to_session(Session& s, const json::object& msg) { get_log(s)->push(json::serialize(msg)); }

  void deliver(Call& c, std::string msg, bool final) {
    if (c.done) return;
    c.bytes_out += msg.size();
    if (c.sse) {
      c.sse->push(std::move(msg));
      if (final) c.sse->finish();
    } else {
      c.early.push_back(std::move(msg));
      if (final) c.final_seen = true;
      c.wake.cancel();
    }
  }

  void complete(Session& s, const std::shared_ptr<Call>& c, const json::object& answer) {
    if (c->done) return;
    deliver(*c, json::serialize(answer), true);
    c->done = true;
    c->final_seen = true;
    c->deadline_timer.cancel();
    s.calls.erase(c->key);
    if (!c->progress_key.empty()) s.by_progress.erase(c->progress_key);
    record_call(s, *c, answer);
  }

  // A request refused by policy (outside the key's scope, no credential mapped): its audit
  // record, written when its answer is, is a tool_refused one with this reason.
  void record_refusal(const Session& s, const std::string& tool, const std::string& reason) {
    refusal = reason;
    spdlog::info("refused '{}' to agent '{}': {}", tool, s.agent, reason);
  }

  // The audit record of a routed request answered before it reached a connector: refused,
  // unknown, or its connector unavailable.
  void record_unrouted(const Session& s, const std::string& method, const std::string& target,
                       size_t bytes_in, const HttpResponse& answer, Clock::time_point started) {
    AuditRecord r;
    r.type = refusal.empty() ? AuditType::kCall : AuditType::kToolRefused;
    r.actor = s.agent;
    r.session = s.tag;
    r.method = method;
    r.target = target;
    r.duration_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    r.bytes_in = bytes_in;
    r.bytes_out = answer.body.size();
    boost::system::error_code ec;
    auto v = json::parse(answer.body, ec);
    if (!ec && v.is_object()) classify(v.as_object(), r);
    if (!refusal.empty()) {
      r.outcome = "refused";
      r.error_class = "policy";
      r.detail = json::object{{"reason", refusal}};
      refusal.clear();
    }
    observe(std::move(r));
  }

  // ---- server streams -----------------------------------------------------------------------

  std::shared_ptr<ServerStream> server_stream_for(const std::shared_ptr<Session>& s, const Route& r,
                                         std::string& error) {
    const ConnectorRef& connector = r.binding->connector;
    const std::string key = connector.describe() + "/" + r.server;
    if (auto it = s->server_streams.find(key); it != s->server_streams.end() && it->second->alive) {
      return it->second;
    }
    // A per-agent credential is chosen here by name; the tunnel holds and injects the value.
    const auto credential = r.binding->credential_for(s->agent);
    if (!credential) {
      std::string mapped;
      for (const auto& [a, c] : r.binding->agent_credentials) mapped += (mapped.empty() ? "" : ", ") + a;
      error = "binding '" + r.binding->name + "' maps no credential to agent '" + s->agent +
              "' (it maps: " + mapped + ")";
      record_refusal(*s, r.binding->name, error);
      return nullptr;
    }
    proto::McpStreamOpen open{.server = r.server,
                              .agent = s->agent,
                              .session = s->tag,
                              .client = {{"protocolVersion", s->version}},
                              .credential = *credential};
    if (auto* c = s->client.if_contains("capabilities")) open.client["capabilities"] = *c;
    if (auto* c = s->client.if_contains("clientInfo")) open.client["clientInfo"] = *c;
    auto stream = host.open_stream(connector, proto::serialize(open));
    if (!stream) {
      error = stream.error() == make_error_code(Errc::kNotFound)
                  ? connector.describe() + " is not connected"
                  : connector.describe() + " cannot take a new stream: " + stream.error().message();
      return nullptr;
    }
    auto up = std::make_shared<ServerStream>();
    up->key = key;
    up->connector = connector;
    up->server = r.server;
    up->stream = *stream;
    up->writer = std::make_shared<StreamWriter>(up->stream);
    s->server_streams[key] = up;
    if (!s->log_level.empty()) set_level(*s, *up);
    asio::co_spawn(ex, read_server_stream(s, up), asio::detached);
    return up;
  }

  void set_level(Session& s, ServerStream& up) {
    const std::string id = "airlock-" + std::to_string(s.next_internal++);
    up.internal_ids.insert(rpc::id_key(json::value(id)));
    up.send(rpc::make_request(json::value(id), "logging/setLevel",
                              json::object{{"level", s.log_level}}));
  }

  asio::awaitable<void> read_server_stream(std::shared_ptr<Session> s, std::shared_ptr<ServerStream> up) {
    rpc::LineSplitter lines(config.max_request_body * 4 + 1024);
    std::string why;
    bool link_lost = false;  // the link went, not just this stream: outcomes are unknown
    for (;;) {
      auto chunk = co_await up->stream->read();
      if (!chunk) {
        why = up->stream->reset_reason().empty() ? chunk.error().message()
                                                 : up->stream->reset_reason();
        link_lost = chunk.error() == make_error_code(Errc::kLinkClosed);
        break;
      }
      if (chunk->empty()) {
        why = up->connector.describe() + " ended the session";
        up->writer->end();  // and so does this side: the stream is done
        break;
      }
      if (!lines.feed(*chunk)) {
        why = up->connector.describe() + " sent an oversized message";
        up->stream->reset(proto::ResetCode::kProtocolError, why);
        break;
      }
      while (auto line = lines.next()) {
        if (s->closed) co_return;
        on_server_line(s, up, *line);
      }
    }
    up->alive = false;
    if (auto it = s->server_streams.find(up->key); it != s->server_streams.end() && it->second == up) {
      s->server_streams.erase(it);
    }
    if (s->closed) co_return;
    link_lost = link_lost || !host.is_live(up->connector);
    if (up->connector.kind == proto::ConnectorKind::kSandbox &&
        up->stream->reset_code() != proto::ResetCode::kRefused) {
      s->lost[up->key] = link_lost ? up->connector.describe() +
                                         " disconnected (its agent restarted or its link was lost)"
                                   : why;
    }
    std::vector<std::shared_ptr<Call>> affected;
    for (auto& [k, c] : s->calls) {
      if (c->up == up) affected.push_back(c);
    }
    if (up->stream->reset_code() == proto::ResetCode::kRefused) {
      // Refused before anything ran (a sandbox with every session in use): the reason is the
      // answer; a tool call gets it as a tool error.
      for (auto& c : affected) {
        if (c->method == "tools/call") {
          complete(*s, c, rpc::make_result(c->agent_id, tool_error(why)));
        } else {
          complete(*s, c, rpc::make_error(c->agent_id, rpc::kUpstreamUnavailable, why));
        }
      }
      co_return;
    }
    for (auto& c : affected) {
      const std::string msg = link_lost
                                  ? up->connector.describe() + " disconnected while " + c->method +
                                        " '" + c->target + "' was in flight; its outcome is unknown"
                                  : "the session with server '" + up->server + "' on " +
                                        up->connector.describe() + " ended while " + c->method +
                                        " '" + c->target + "' was in flight: " + why;
      complete(*s, c, rpc::make_error(c->agent_id, rpc::kUpstreamUnavailable, msg));
    }
  }

  void on_server_line(const std::shared_ptr<Session>& s, const std::shared_ptr<ServerStream>& up,
                        const std::string& line) {
    proto::McpEnvelope env;
    std::string error;
    if (!proto::parse_envelope(line, env, error)) {
      spdlog::warn("{} sent a malformed envelope ({}); ignored", up->connector.describe(), error);
      return;
    }
    std::optional<json::value>& related = env.related;
    auto msg = rpc::classify(std::move(env.message), error);
    if (!msg) {
      spdlog::warn("{} relayed an invalid message ({}); ignored", up->connector.describe(), error);
      return;
    }
    auto related_call = [&]() -> std::shared_ptr<Call> {
      if (!related) return nullptr;
      auto it = s->calls.find(rpc::id_key(*related));
      if (it == s->calls.end() || it->second->up != up || it->second->done) return nullptr;
      return it->second;
    };
    if (msg->kind != rpc::Kind::kResponse && env.redactions) {
      if (auto call = related_call()) call->redactions += env.redactions;
    }
    switch (msg->kind) {
      case rpc::Kind::kResponse: {
        const std::string key = rpc::id_key(msg->id());
        if (up->internal_ids.erase(key)) return;
        auto it = s->calls.find(key);
        if (it == s->calls.end() || it->second->up != up) return;  // timed out or cancelled
        auto call = it->second;
        call->redactions += env.redactions;
        complete(*s, call, msg->body);
        return;
      }
      case rpc::Kind::kNotification: {
        const auto method = msg->method();
        if (method == "notifications/progress") {
          auto* p = msg->params();
          const json::value* token = p ? p->if_contains("progressToken") : nullptr;
          if (token) {
            auto it = s->by_progress.find(rpc::id_key(*token));
            if (it != s->by_progress.end() && !it->second->done) {
              auto call = it->second;
              // Progress extends the deadline, up to the binding's hard maximum.
              call->deadline = std::min(Clock::now() + call->timeout, call->hard_deadline);
              deliver(*call, json::serialize(msg->body), false);
              return;
            }
          }
          to_session(*s, msg->body);
          return;
        }
        if (method == "notifications/tools/list_changed" ||
            method == "notifications/prompts/list_changed" ||
            method == "notifications/resources/list_changed") {
          return;  // the connector refreshes its inventory; airlockd tells sessions what changed
        }
        if (method == "notifications/cancelled") {
          // The server withdrew one of its own requests to the agent.
          auto* p = msg->params();
          const json::value* rid = p ? p->if_contains("requestId") : nullptr;
          if (!rid) return;
          auto it = s->server_request_ids.find(up->key + "|" + rpc::id_key(*rid));
          if (it == s->server_request_ids.end()) return;
          msg->body["params"].as_object()["requestId"] = it->second;
        }
        if (auto call = related_call()) {
          deliver(*call, json::serialize(msg->body), false);
        } else {
          to_session(*s, msg->body);
        }
        return;
      }
      case rpc::Kind::kRequest: {
        const auto method = msg->method();
        const char* needs = method == "sampling/createMessage" ? "sampling"
                            : method == "elicitation/create"   ? "elicitation"
                            : method == "roots/list"           ? "roots"
                                                               : nullptr;
        if (needs && !s->client_supports(needs)) {
          up->send(
              rpc::make_error(msg->id(), rpc::kMethodNotFound,
                              "the agent's MCP client does not support " + std::string(needs)));
          return;
        }
        const json::value agent_id =
            json::string("airlock-srv-" + std::to_string(s->next_server_request++));
        ServerRequest pending{up, msg->id()};
        pending.method = std::string(method);
        pending.connector = up->connector.id();
        pending.server = up->server;
        if (auto call = related_call()) pending.during = call->target;
        pending.bytes_out = line.size();
        s->server_requests[rpc::id_key(agent_id)] = std::move(pending);
        s->server_request_ids[up->key + "|" + rpc::id_key(msg->id())] = agent_id;
        msg->body["id"] = agent_id;
        if (auto call = related_call()) {
          deliver(*call, json::serialize(msg->body), false);
        } else {
          // Without a relation, any open call on this stream is the best path; else GET.
          std::shared_ptr<Call> any;
          for (auto& [k, c] : s->calls) {
            if (c->up == up && !c->done) any = c;
          }
          if (any)
            deliver(*any, json::serialize(msg->body), false);
          else
            to_session(*s, msg->body);
        }
        return;
      }
    }
  }

  asio::awaitable<void> watch_deadline(std::shared_ptr<Session> s, std::shared_ptr<Call> c) {
    while (!c->done) {
      c->deadline_timer.expires_at(c->deadline);
      co_await c->deadline_timer.async_wait(kUseTuple);
      if (c->done || s->closed) co_return;
      if (Clock::now() < c->deadline) continue;  // progress moved it
      // Expired: cancel it at the server and answer the agent.
      if (c->up && c->up->alive) {
        c->up->send(rpc::make_notification(
            "notifications/cancelled",
            json::object{{"requestId", c->agent_id}, {"reason", "deadline exceeded"}}));
      }
      c->end_class = "timeout";
      complete(*s, c,
               rpc::make_error(c->agent_id, rpc::kRequestTimeout,
                               c->method + " '" + c->target + "' timed out after " +
                                   std::to_string(c->timeout.count()) +
                                   " ms without an answer (binding '" + c->binding +
                                   "' timeout); the server was asked to cancel it"));
      co_return;
    }
  }

  // ---- HTTP ---------------------------------------------------------------------------------

  std::optional<HttpResponse> check_origin(const HttpRequest& req) {
    const std::string origin = req.header("origin");
    if (origin.empty() || origins.allows(origin)) return std::nullopt;
    return rpc_error_http(403, nullptr, rpc::kInvalidRequest,
                          "Forbidden: Origin '" + origin +
                              "' is not allowed (airlockd serves loopback origins and its own "
                              "names from tls.hostnames); add it to mcp.allowed_origins in "
                              "airlockd.yaml");
  }

  std::optional<AgentRecord> authenticate(const HttpRequest& req, std::string& why) {
    const std::string auth = req.header("authorization");
    if (auth.rfind("Bearer ", 0) != 0) {
      why = "missing 'Authorization: Bearer <agent key>'";
      return std::nullopt;
    }
    const std::string token = auth.substr(7);
    auto id = token_id(token);
    if (!id) {
      why = "the agent key is malformed";
      return std::nullopt;
    }
    auto it = key_cache.find(*id);
    if (it == key_cache.end() || Clock::now() - it->second.loaded > kKeyCacheTtl) {
      if (it != key_cache.end()) key_cache.erase(it);
      auto rec = host.store->find_token(*id);
      if (!rec || rec->revoked || rec->kind != "agent") {
        why = "the agent key is invalid or revoked";
        return std::nullopt;
      }
      auto agent = host.store->get_agent(rec->name);
      if (!agent) {
        why = "the agent key's agent no longer exists";
        return std::nullopt;
      }
      if (key_cache.size() >= kKeyCacheMax) key_cache.clear();
      it = key_cache.emplace(*id, CachedKey{rec->hash, *agent, Clock::now()}).first;
    }
    if (!verify_token(token, it->second.hash)) {
      why = "the agent key is invalid or revoked";
      return std::nullopt;
    }
    return it->second.agent;
  }

  asio::awaitable<HttpResponse> handle(HttpRequest req) {
    if (auto r = check_origin(req)) co_return *r;
    if (req.method != "POST" && req.method != "GET" && req.method != "DELETE") {
      auto r = rpc_error_http(405, nullptr, rpc::kInvalidRequest,
                              "Method Not Allowed: /mcp accepts POST, GET and DELETE");
      r.headers.emplace_back("Allow", "GET, POST, DELETE");
      co_return r;
    }
    std::string why;
    auto agent = authenticate(req, why);
    if (!agent) {
      if (m_auth_failures) m_auth_failures->Increment();
      if (host.audit) host.audit(auth_failure(req, "/mcp", why));
      auto r = rpc_error_http(401, nullptr, rpc::kInvalidRequest, "Unauthorized: " + why);
      r.headers.emplace_back("WWW-Authenticate",
                             "Bearer realm=\"airlock-mcp\", error=\"invalid_token\"");
      co_return r;
    }
    const std::string pv = req.header("mcp-protocol-version");
    if (!pv.empty() && !supported_version(pv)) {
      co_return rpc_error_http(400, nullptr, rpc::kInvalidRequest,
                               "Bad Request: unsupported MCP-Protocol-Version '" + pv +
                                   "'; airlockd supports 2025-11-25, 2025-06-18 and 2025-03-26");
    }
    const std::string sid = req.header("mcp-session-id");
    std::shared_ptr<Session> session;
    if (!sid.empty()) {
      auto it = sessions.find(sid);
      // A session id presented with another agent's key is as unknown as a made-up one.
      if (it == sessions.end() || it->second->closed || it->second->agent != agent->name) {
        co_return rpc_error_http(404, nullptr, rpc::kInvalidRequest,
                                 "Session not found: it ended or never existed; initialize a "
                                 "new one");
      }
      session = it->second;
      session->last_active = Clock::now();
    }
    if (req.method == "DELETE") {
      if (!session) {
        co_return rpc_error_http(400, nullptr, rpc::kInvalidRequest,
                                 "Bad Request: Mcp-Session-Id header is required");
      }
      end_session(*session, "the client ended the session");
      sessions.erase(session->id);
      co_return HttpResponse::json(200, "{}");
    }
    if (req.method == "GET") co_return open_get(req, session);
    co_return co_await handle_post(req, *agent, session);
  }

  HttpResponse open_get(const HttpRequest& req, const std::shared_ptr<Session>& s) {
    const std::string accept = req.header("accept");
    if (accept.find("text/event-stream") == std::string::npos) {
      return rpc_error_http(406, nullptr, rpc::kInvalidRequest,
                            "Not Acceptable: the GET stream needs 'Accept: text/event-stream'");
    }
    if (!s) {
      return rpc_error_http(400, nullptr, rpc::kInvalidRequest,
                            "Bad Request: Mcp-Session-Id header is required");
    }
    std::shared_ptr<EventLog> log;
    uint64_t from = 0;
    const std::string last = req.header("last-event-id");
    if (!last.empty()) {
      const auto dash = last.rfind('-');
      auto it = dash == std::string::npos ? s->logs.end() : s->logs.find(last.substr(0, dash));
      if (it == s->logs.end()) {
        return rpc_error_http(
            400, nullptr, rpc::kInvalidRequest,
            "Bad Request: Last-Event-ID '" + last + "' names no stream of this session");
      }
      log = it->second;
      try {
        from = std::stoull(last.substr(dash + 1));
      } catch (const std::exception&) {
        return rpc_error_http(400, nullptr, rpc::kInvalidRequest,
                              "Bad Request: malformed Last-Event-ID '" + last + "'");
      }
    } else {
      log = get_log(*s);
      if (log->attached) {
        return rpc_error_http(409, nullptr, rpc::kInvalidRequest,
                              "Conflict: this session already has an open GET stream");
      }
      from = 0;
    }
    HttpResponse r;
    r.content_type = "text/event-stream";
    r.headers.emplace_back("Mcp-Session-Id", s->id);
    r.stream = std::make_shared<SseConsumer>(log, from, config.mcp.sse_keepalive,
                                             static_cast<long>(config.mcp.sse_retry.count()));
    return r;
  }

  void end_session(Session& s, const std::string& why) {
    if (s.closed) return;
    s.closed = true;
    auto calls = s.calls;
    for (auto& [k, c] : calls) {
      if (!c->done) {
        const json::object answer =
            rpc::make_error(c->agent_id, rpc::kUpstreamUnavailable, "session ended: " + why);
        deliver(*c, json::serialize(answer), true);
        c->done = true;
        c->deadline_timer.cancel();
        c->end_class = "session_ended";
        record_call(s, *c, answer);
      }
    }
    s.calls.clear();
    s.by_progress.clear();
    for (auto& [k, up] : s.server_streams) {
      up->alive = false;
      up->writer->end();
    }
    s.server_streams.clear();
    for (auto& [k, log] : s.logs) log->finish();
    spdlog::debug("session {} of agent '{}' ended: {}", s.tag, s.agent, why);
  }

  asio::awaitable<HttpResponse> handle_post(const HttpRequest& req, const AgentRecord& agent,
                                            std::shared_ptr<Session> s) {
    const std::string accept = req.header("accept");
    if (!accept.empty() && accept.find("application/json") == std::string::npos &&
        accept.find("text/event-stream") == std::string::npos &&
        accept.find("*/*") == std::string::npos) {
      co_return rpc_error_http(406, nullptr, rpc::kInvalidRequest,
                               "Not Acceptable: POST /mcp answers application/json or "
                               "text/event-stream");
    }
    std::string error;
    bool batch = false;
    auto msg = rpc::parse(req.body, error, &batch);
    if (!msg) {
      co_return rpc_error_http(400, nullptr, batch ? rpc::kInvalidRequest : rpc::kParseError,
                               (batch ? "" : "Parse error: ") + error);
    }
    if (msg->kind == rpc::Kind::kRequest && msg->method() == "initialize") {
      if (s) {
        co_return rpc_error_http(400, msg->id(), rpc::kInvalidRequest,
                                 "Bad Request: initialize must not carry Mcp-Session-Id");
      }
      co_return initialize(*msg, agent);
    }
    if (!s) {
      co_return rpc_error_http(400, msg->kind == rpc::Kind::kRequest ? msg->id() : json::value(),
                               rpc::kInvalidRequest,
                               "Bad Request: Mcp-Session-Id header is required (initialize "
                               "first)");
    }
    switch (msg->kind) {
      case rpc::Kind::kNotification:
        on_agent_notification(s, *msg);
        co_return HttpResponse::json(202, "");
      case rpc::Kind::kResponse:
        on_agent_response(*s, *msg, req.body.size());
        co_return HttpResponse::json(202, "");
      case rpc::Kind::kRequest:
        break;
    }
    const std::string method(msg->method());
    if (!routed_method(method)) co_return co_await on_agent_request(s, std::move(*msg), 0);
    // Routed requests are all audited: those answered here (refused, unknown, unavailable)
    // as well as those a connector answers.
    const std::string target = target_of(*msg);
    const uint64_t started_before = calls_started;
    const auto started = Clock::now();
    HttpResponse r = co_await on_agent_request(s, std::move(*msg), req.body.size());
    if (calls_started == started_before) {
      record_unrouted(*s, method, target, req.body.size(), r, started);
    }
    co_return r;
  }

  static bool routed_method(std::string_view m) {
    return m == "tools/call" || m == "prompts/get" || m == "resources/read" ||
           m == "resources/subscribe" || m == "resources/unsubscribe" || m == "completion/complete";
  }

  // The tool or prompt name, or the resource URI, a routed request is about.
  static std::string target_of(const rpc::Message& msg) {
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

  HttpResponse initialize(const rpc::Message& msg, const AgentRecord& agent) {
    const auto* params = msg.params();
    std::string requested = str_of(params, "protocolVersion");
    if (!params || requested.empty()) {
      return rpc_http(200, rpc::make_error(msg.id(), rpc::kInvalidParams,
                                           "initialize needs params.protocolVersion"));
    }
    if (sessions.size() >= config.mcp.max_sessions) {
      return rpc_error_http(503, msg.id(), rpc::kInternalError,
                            "airlockd has reached mcp.max_sessions; try again later");
    }
    auto s = std::make_shared<Session>();
    s->id = random_hex(32);
    s->tag = random_hex(6);
    s->agent = agent.name;
    s->scope = agent.tools;
    s->version = supported_version(requested) ? requested : kLatest;
    s->client = *params;
    sessions[s->id] = s;
    json::object result{
        {"protocolVersion", s->version},
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
    s->tools_sig = signature(visible_tools(*s));
    s->prompts_sig = signature(visible_prompts(*s));
    s->resources_sig = signature(visible_resources(*s));
    spdlog::info("agent '{}' opened MCP session {} ({})", agent.name, s->tag, s->version);
    auto r = rpc_http(200, rpc::make_result(msg.id(), std::move(result)));
    r.headers.emplace_back("Mcp-Session-Id", s->id);
    return r;
  }

  void on_agent_notification(const std::shared_ptr<Session>& s, rpc::Message& msg) {
    const auto method = msg.method();
    if (method == "notifications/initialized") {
      s->initialized = true;
      return;
    }
    if (method == "notifications/cancelled") {
      const auto* p = msg.params();
      const json::value* rid = p ? p->if_contains("requestId") : nullptr;
      if (!rid) return;
      auto it = s->calls.find(rpc::id_key(*rid));
      if (it == s->calls.end()) return;
      auto call = it->second;
      if (call->up && call->up->alive) call->up->send(msg.body);
      call->end_class = "cancelled";
      complete(*s, call,
               rpc::make_error(call->agent_id, rpc::kRequestTimeout, "cancelled by the client"));
      return;
    }
    if (method == "notifications/roots/list_changed") {
      for (auto& [k, up] : s->server_streams) up->send(msg.body);
      return;
    }
    spdlog::debug("session {}: notification {} not forwarded", s->tag, method);
  }

  void on_agent_response(Session& s, rpc::Message& msg, size_t bytes) {
    auto it = s.server_requests.find(rpc::id_key(msg.id()));
    if (it == s.server_requests.end()) return;
    {
      const ServerRequest& p = it->second;
      AuditRecord r;
      r.type = AuditType::kServerRequest;
      r.actor = s.agent;
      r.session = s.tag;
      r.method = p.method;
      r.target = p.during;
      r.connector = p.connector;
      r.server = p.server;
      r.duration_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - p.started).count();
      r.bytes_in = bytes;
      r.bytes_out = p.bytes_out;
      classify(msg.body, r);
      // An elicitation the user declined or cancelled is answered, not failed.
      if (auto* res = msg.body.if_contains("result"); res && res->is_object()) {
        if (auto* a = res->as_object().if_contains("action");
            a && a->is_string() && a->as_string() != "accept") {
          r.outcome = "declined";
          r.detail = json::object{{"action", a->as_string()}};
        }
      }
      if (host.audit) host.audit(std::move(r));
    }
    auto up = it->second.up.lock();
    msg.body["id"] = it->second.original_id;
    if (up) s.server_request_ids.erase(up->key + "|" + rpc::id_key(it->second.original_id));
    s.server_requests.erase(it);
    if (up && up->alive) up->send(msg.body);
  }

  template <class Items>
  HttpResponse list_page(const rpc::Message& msg, const Items& items, const char* key) {
    size_t offset = 0;
    if (auto* p = msg.params()) {
      if (auto* c = p->if_contains("cursor"); c && !c->is_null()) {
        auto off = c->is_string() ? decode_cursor(c->as_string()) : std::nullopt;
        if (!off || *off > items.size()) {
          return rpc_http(200, rpc::make_error(msg.id(), rpc::kInvalidParams,
                                               "invalid cursor; start again without one"));
        }
        offset = *off;
      }
    }
    json::array page;
    const size_t end = std::min(items.size(), offset + config.mcp.page_size);
    for (size_t i = offset; i < end; ++i) page.push_back(items[i]);
    json::object result{{key, std::move(page)}};
    if (end < items.size()) result["nextCursor"] = encode_cursor(end);
    return rpc_http(200, rpc::make_result(msg.id(), std::move(result)));
  }

  static std::vector<json::object> defs(const std::vector<const ExposedItem*>& items) {
    std::vector<json::object> out;
    for (const auto* i : items) out.push_back(i->definition);
    return out;
  }

  asio::awaitable<HttpResponse> on_agent_request(std::shared_ptr<Session> s, rpc::Message msg,
                                                 size_t body_bytes) {
    const std::string method(msg.method());
    const json::object* params = msg.params();
    if (method == "ping") co_return rpc_http(200, rpc::make_result(msg.id(), json::object{}));
    if (method == "tools/list") co_return list_page(msg, defs(visible_tools(*s)), "tools");
    if (method == "prompts/list") co_return list_page(msg, defs(visible_prompts(*s)), "prompts");
    if (method == "resources/list") {
      co_return list_page(msg, defs(visible_resources(*s)), "resources");
    }
    if (method == "resources/templates/list") {
      std::vector<json::object> t;
      for (const auto& tp : catalog->templates()) {
        if (binding_visible(*s, tp.route.binding)) t.push_back(tp.definition);
      }
      co_return list_page(msg, t, "resourceTemplates");
    }
    if (method == "logging/setLevel") {
      const std::string level = str_of(params, "level");
      static const std::set<std::string> kLevels = {"debug", "info",     "notice", "warning",
                                                    "error", "critical", "alert",  "emergency"};
      if (!kLevels.count(level)) {
        co_return rpc_http(200, rpc::make_error(msg.id(), rpc::kInvalidParams,
                                                "level must be one of debug, info, notice, "
                                                "warning, error, critical, alert, emergency"));
      }
      s->log_level = level;
      for (auto& [k, up] : s->server_streams) set_level(*s, *up);
      co_return rpc_http(200, rpc::make_result(msg.id(), json::object{}));
    }

    // Everything else is routed to a server.
    std::optional<Route> route;
    std::string target;
    // Pointers, not operator[]: that may rehash the object and move what `params` points at.
    json::object& body = msg.body;
    json::value* pv = body.if_contains("params");
    json::object* mparams = pv && pv->is_object() ? &pv->as_object() : nullptr;
    if (method == "tools/call") {
      target = str_of(params, "name");
      if (target.empty()) {
        co_return rpc_http(
            200, rpc::make_error(msg.id(), rpc::kInvalidParams, "tools/call needs params.name"));
      }
      if (!in_scope(*s, target)) {
        record_refusal(*s, target, "outside the agent key's scope");
        co_return rpc_http(
            200, rpc::make_error(msg.id(), rpc::kInvalidParams,
                                 "Unknown tool '" + target + "': not available to this agent key"));
      }
      const auto* t = catalog->tool(target);
      if (!t) {
        co_return rpc_http(
            200, rpc::make_error(msg.id(), rpc::kInvalidParams, unknown_tool_message(target)));
      }
      route = t->route;
      (*mparams)["name"] = t->upstream_name;
    } else if (method == "prompts/get") {
      target = str_of(params, "name");
      const auto* p = catalog->prompt(target);
      if (!p || !in_scope(*s, target)) {
        co_return rpc_http(
            200, rpc::make_error(msg.id(), rpc::kInvalidParams, "Unknown prompt '" + target + "'"));
      }
      route = p->route;
      (*mparams)["name"] = p->upstream_name;
    } else if (method == "resources/read" || method == "resources/subscribe" ||
               method == "resources/unsubscribe") {
      target = str_of(params, "uri");
      route = catalog->route_resource(target);
      if (!route || !binding_visible(*s, route->binding)) {
        co_return rpc_http(200, rpc::make_error(msg.id(), rpc::kResourceNotFound,
                                                "Resource not found: '" + target + "'",
                                                json::object{{"uri", target}}));
      }
    } else if (method == "completion/complete") {
      const json::object* ref = nullptr;
      if (params) {
        if (auto* r = params->if_contains("ref"); r && r->is_object()) ref = &r->as_object();
      }
      const std::string type = str_of(ref, "type");
      if (type == "ref/prompt") {
        target = str_of(ref, "name");
        const auto* p = catalog->prompt(target);
        if (p && in_scope(*s, target)) {
          route = p->route;
          if (auto* r = mparams->if_contains("ref"); r && r->is_object()) {
            r->as_object()["name"] = p->upstream_name;
          }
        }
      } else if (type == "ref/resource") {
        target = str_of(ref, "uri");
        route = catalog->route_resource(target);
        if (route && !binding_visible(*s, route->binding)) route.reset();
      }
      if (!route) {
        co_return rpc_http(200, rpc::make_error(msg.id(), rpc::kInvalidParams,
                                                "completion/complete: no prompt or resource "
                                                "template '" +
                                                    target + "'"));
      }
    } else {
      co_return rpc_http(
          200, rpc::make_error(msg.id(), rpc::kMethodNotFound, "Method not found: " + method));
    }

    if (route->binding->connector.kind == proto::ConnectorKind::kSandbox) {
      const std::string key = route->binding->connector.describe() + "/" + route->server;
      auto lost = s->lost.find(key);
      auto live = s->server_streams.find(key);
      if (lost != s->lost.end() && (live == s->server_streams.end() || !live->second->alive)) {
        const std::string text = "The sandbox session of this MCP session is gone: " +
                                 lost->second + ". Its workspace, files and shell state are lost; "
                                 "call again to start a new sandbox session.";
        s->lost.erase(lost);
        if (method == "tools/call") co_return rpc_http(200, rpc::make_result(msg.id(), tool_error(text)));
        co_return rpc_http(200, rpc::make_error(msg.id(), rpc::kUpstreamUnavailable, text));
      }
    }
    std::string error;
    auto up = server_stream_for(s, *route, error);
    if (!up) {
      co_return rpc_http(200,
                         rpc::make_error(msg.id(), rpc::kUpstreamUnavailable,
                                         method + " '" + target + "' is unavailable: " + error));
    }
    const std::string key = rpc::id_key(msg.id());
    if (s->calls.count(key)) {
      co_return rpc_http(200, rpc::make_error(msg.id(), rpc::kInvalidRequest,
                                              "request id is already in use in this session"));
    }
    auto call = std::make_shared<Call>(ex);
    call->agent_id = msg.id();
    call->key = key;
    call->method = method;
    call->target = target;
    call->up = up;
    call->binding = route->binding->name;
    call->timeout = route->binding->timeout;
    call->deadline = Clock::now() + call->timeout;
    call->hard_deadline = Clock::now() + route->binding->max_timeout;
    if (params) {
      if (auto* meta = params->if_contains("_meta"); meta && meta->is_object()) {
        if (auto* tok = meta->as_object().if_contains("progressToken")) {
          call->progress_key = rpc::id_key(*tok);
          s->by_progress[call->progress_key] = call;
        }
      }
    }
    call->bytes_in = body_bytes;
    s->calls[key] = call;
    ++calls_started;
    up->send(body);
    asio::co_spawn(ex, watch_deadline(s, call), asio::detached);

    if (call->early.empty()) {
      co_await call->wake.async_wait(kUseTuple);
    }
    if (call->final_seen && call->early.size() == 1) {
      HttpResponse r = HttpResponse::json(200, std::move(call->early.front()));
      call->early.clear();
      co_return r;
    }
    // Notifications or server requests came first: answer as an SSE stream.
    auto log = std::make_shared<EventLog>(ex, "p" + std::to_string(s->next_stream++));
    for (auto& m : call->early) log->push(std::move(m));
    call->early.clear();
    if (call->final_seen) log->finish();
    call->sse = log;
    s->logs[log->key()] = log;
    HttpResponse r;
    r.content_type = "text/event-stream";
    r.stream = std::make_shared<SseConsumer>(log, 0, config.mcp.sse_keepalive,
                                             static_cast<long>(config.mcp.sse_retry.count()));
    co_return r;
  }

  std::string unknown_tool_message(const std::string& name) {
    // A tool its connector offered when it was last connected.
    for (const auto& b : *catalog_bindings) {
      auto why = catalog->unavailable().find(b.name);
      auto inv = inventories.find(b.connector);
      if (why == catalog->unavailable().end() || inv == inventories.end()) continue;
      std::vector<std::string> ignored;
      const std::vector<Binding> alone{b};
      const std::map<ConnectorRef, ConnectorInventory> last{{b.connector, inv->second}};
      const Catalog offered = Catalog::build(alone, last, ignored);
      if (offered.tool(name)) return "Tool '" + name + "' is unavailable: " + why->second;
    }
    for (const auto& b : *catalog_bindings) {
      // A single-tool binding exposes its upstream tool under the binding's own name.
      if ((!b.tool.empty() && b.name == name) ||
          (!b.prefix.empty() && name.rfind(b.prefix, 0) == 0)) {
        if (auto it = catalog->unavailable().find(b.name); it != catalog->unavailable().end()) {
          return "Tool '" + name + "' is unavailable: " + it->second;
        }
      }
    }
    return "Unknown tool '" + name + "'";
  }

  // ---- housekeeping -------------------------------------------------------------------------

  asio::awaitable<void> sweep() {
    while (!stopped) {
      sweeper.expires_after(std::chrono::seconds(5));
      co_await sweeper.async_wait(kUseTuple);
      if (stopped) co_return;
      const auto now = Clock::now();
      for (auto it = sessions.begin(); it != sessions.end();) {
        auto& s = *it->second;
        // Finished POST streams stay resumable for a minute.
        for (auto l = s.logs.begin(); l != s.logs.end();) {
          if (l->second->finished() && l->first != "g") {
            if (l->second->finished_at == Clock::time_point{}) l->second->finished_at = now;
            if (now - l->second->finished_at > std::chrono::minutes(1)) {
              l = s.logs.erase(l);
              continue;
            }
          }
          ++l;
        }
        const bool busy = !s.calls.empty() || (s.get && s.get->attached);
        if (!busy && now - s.last_active > config.mcp.session_idle_timeout) {
          end_session(s, "idle for longer than mcp.session_idle_timeout");
          it = sessions.erase(it);
          continue;
        }
        ++it;
      }
    }
  }
};

McpGateway::McpGateway(asio::any_io_executor ex, const AirlockdConfig& config, Host host)
    : impl_(std::make_unique<Impl>(ex, config, std::move(host))) {
  impl_->register_metrics();
}

void McpGateway::forget_agent_keys() { impl_->key_cache.clear(); }

McpGateway::~McpGateway() { stop(); }

void McpGateway::set_origin_policy(OriginPolicy policy) { impl_->origins = std::move(policy); }

void McpGateway::start() {
  for (const auto& [name, spec] : impl_->host.store->list_bindings()) {
    boost::system::error_code ec;
    auto v = json::parse(spec, ec);
    if (!ec && v.is_object()) impl_->bindings.push_back(binding_from_json(v.as_object()));
  }
  impl_->rebuild();
  asio::co_spawn(impl_->ex, impl_->sweep(), asio::detached);
}

void McpGateway::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->sweeper.cancel();
  for (auto& [id, s] : impl_->sessions) impl_->end_session(*s, "airlockd is shutting down");
  impl_->sessions.clear();
}

asio::awaitable<HttpResponse> McpGateway::handle(HttpRequest req) {
  co_return co_await impl_->handle(std::move(req));
}

void McpGateway::inventory_updated(const ConnectorRef& connector,
                                   proto::InventoryReport inventory) {
  impl_->inventories[connector] = ConnectorInventory{std::move(inventory.servers)};
  impl_->rebuild();
}

void McpGateway::connectors_changed() { impl_->rebuild(); }

std::string McpGateway::apply_bindings(const std::vector<Binding>& bindings) {
  std::vector<std::string> conflicts;
  // Collisions against what the connected connectors offer now. Bindings whose connectors are
  // not connected are checked when they connect (the first binding by name keeps a name).
  Catalog::build(bindings, impl_->live_inventories(), conflicts);
  if (!conflicts.empty()) {
    std::string out;
    for (const auto& c : conflicts) out += c + "\n";
    return out;
  }
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& b : bindings) rows.emplace_back(b.name, json::serialize(binding_to_json(b)));
  if (!impl_->host.store->replace_bindings(rows)) return "could not store the bindings\n";
  impl_->bindings = bindings;
  impl_->rebuild();
  spdlog::info("applied {} tool binding(s)", bindings.size());
  return {};
}

std::vector<Binding> McpGateway::bindings() const { return impl_->bindings; }

json::object McpGateway::describe() const {
  json::array out;
  const auto& cat = *impl_->catalog;
  for (const auto& b : impl_->bindings) {
    json::object o = binding_to_json(b);
    json::array tools;
    for (const auto& t : cat.tools()) {
      if (t.route.binding && t.route.binding->name == b.name) {
        json::object tool{{"name", t.name}, {"upstream", t.upstream_name}};
        if (auto* d = t.definition.if_contains("description"); d && d->is_string()) {
          tool["description"] = *d;
        }
        tools.push_back(std::move(tool));
      }
    }
    o["tools"] = std::move(tools);
    if (auto it = cat.unavailable().find(b.name); it != cat.unavailable().end()) {
      o["status"] = "unavailable";
      o["reason"] = it->second;
    } else {
      o["status"] = "available";
    }
    out.push_back(std::move(o));
  }
  return json::object{{"bindings", std::move(out)}};
}

json::array McpGateway::servers_of(const ConnectorRef& connector) const {
  json::array out;
  auto it = impl_->inventories.find(connector);
  if (it == impl_->inventories.end()) return out;
  for (const auto& server : it->second.servers) {
    auto field = [&](const char* k) {
      auto* v = server.if_contains(k);
      return v && v->is_string() ? std::string(v->as_string()) : std::string();
    };
    const json::value* tools = server.if_contains("tools");
    out.push_back(
        json::object{{"name", field("name")},
                     {"status", field("status").empty() ? "ok" : field("status")},
                     {"error", field("error")},
                     {"tools", tools && tools->is_array() ? tools->as_array().size() : 0}});
  }
  return out;
}

size_t McpGateway::session_count() const { return impl_->sessions.size(); }

}  // namespace airlock::controlplane
