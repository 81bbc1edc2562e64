#include "controlplane/mcp_gateway.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <deque>
#include <unordered_map>

#include "common/jsonrpc.h"
#include "common/log.h"
#include "common/mcp_revision.h"
#include "common/stream_contract.h"
#include "common/token.h"
#include "controlplane/access.h"
#include "controlplane/gateway_core.h"

namespace airlock::controlplane {
namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
using Clock = std::chrono::steady_clock;
namespace rpc = jsonrpc;

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

HttpResponse rpc_error_http(int status, const json::value& id, int code, std::string_view msg,
                            json::value data = nullptr) {
  return HttpResponse::json(status,
                            json::serialize(rpc::make_error(id, code, msg, std::move(data))));
}

// An unsupported MCP-Protocol-Version: what is served, as MCP 2026-07-28 reports it.
HttpResponse unsupported_version(const std::string& requested) {
  json::array supported;
  for (const auto& v : GatewayCore::supported_versions()) supported.push_back(json::string(v));
  return rpc_error_http(
      400, nullptr, rpc::kUnsupportedProtocolVersion,
      "Bad Request: unsupported MCP-Protocol-Version '" + requested +
          "'; airlockd supports 2026-07-28 (without a session) and 2025-11-25, "
          "2025-06-18 and 2025-03-26 (after initialize)",
      json::object{{"supported", std::move(supported)}, {"requested", requested}});
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
    set_attached(true);
    return ++generation_;
  }
  uint64_t generation() const { return generation_; }
  bool attached() const { return attached_; }
  void set_attached(bool on) {
    if (attached_ == on) return;
    attached_ = on;
    if (on_attached) on_attached(on);
  }
  // Told when a consumer comes or goes (the GET stream: a session with one is not idle).
  std::function<void(bool)> on_attached;
  Clock::time_point finished_at{};

 private:
  static constexpr size_t kMaxEvents = 1000;
  static constexpr size_t kMaxBytes = 8 * 1024 * 1024;
  std::string key_;
  std::deque<std::pair<uint64_t, std::string>> events_;
  size_t bytes_ = 0;
  uint64_t next_seq_ = 1;
  bool finished_ = false;
  bool attached_ = false;
  uint64_t generation_ = 0;
  asio::steady_timer signal_;
};

// One HTTP response reading an EventLog from a position.
class SseConsumer final : public BodyStream {
 public:
  // `retry_ms` < 0: not resumable (MCP 2026-07-28): no event ids, no priming event.
  // `on_gone` is called once when the client stops reading before the log finished.
  SseConsumer(std::shared_ptr<EventLog> log, uint64_t from, std::chrono::milliseconds keepalive,
              long retry_ms, std::function<void()> on_gone = nullptr)
      : log_(std::move(log)),
        cursor_(from),
        keepalive_(keepalive),
        retry_ms_(retry_ms),
        on_gone_(std::move(on_gone)) {
    generation_ = log_->attach();
    primed_ = retry_ms_ < 0;
  }
  ~SseConsumer() override { client_gone(); }

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
        const std::string id =
            retry_ms_ < 0 ? std::string() : log_->key() + "-" + std::to_string(e->first);
        co_return rpc::format_sse(id, e->second);
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
    if (log_->generation() == generation_) log_->set_attached(false);
    if (on_gone_ && !log_->finished()) on_gone_();
    on_gone_ = nullptr;
  }

 private:
  std::shared_ptr<EventLog> log_;
  uint64_t cursor_;
  uint64_t generation_ = 0;
  std::chrono::milliseconds keepalive_;
  long retry_ms_;
  bool primed_ = false;
  std::function<void()> on_gone_;
};

// One agent request waiting for its answer: messages that came before the HTTP response was
// chosen (one final answer: JSON; anything else first: an SSE stream), then the stream.
struct Exchange {
  explicit Exchange(asio::any_io_executor ex) : wake(ex, asio::steady_timer::time_point::max()) {}
  asio::steady_timer wake;
  std::deque<std::string> early;
  bool final_seen = false;
  int http_status = 200;
  std::shared_ptr<EventLog> sse;
};

// A session's stream to a connector, as the socket side holds it.
struct UpstreamIo {
  ConnectorRef connector;
  std::shared_ptr<LinkStream> stream;
  std::shared_ptr<StreamWriter> writer;
};

// What the HTTP side keeps of a session: its SSE logs and its connector streams.
struct SessionIo {
  std::shared_ptr<EventLog> get;
  std::map<std::string, std::shared_ptr<EventLog>> logs;  // for resumption
  std::map<std::string, std::shared_ptr<UpstreamIo>> upstreams;
  uint64_t next_stream = 1;
};

}  // namespace

// The HTTP/SSE shell over GatewayCore: authenticates agents, turns requests into the core's
// events and carries out its effects (connector streams, answers, audit records, deadlines).
struct McpGateway::Impl {
  Impl(asio::any_io_executor e, const AirlockdConfig& c, Host h)
      : ex(e),
        config(c),
        host(std::move(h)),
        core(std::make_shared<GatewayCore>(GatewayCore::Limits{
            c.mcp.page_size, c.mcp.max_sessions, c.mcp.session_idle_timeout, random_hex(32)})),
        ticker(e) {}

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
  std::shared_ptr<GatewayCore> core;  // shared: SSE logs outliving the gateway hold it weakly
  std::map<std::string, SessionIo> sessions;
  std::unordered_map<uint64_t, std::shared_ptr<Exchange>> exchanges;  // waiting for answers
  uint64_t next_exchange = 1;
  // Wakes the core at its earliest deadline, and every kSweep to end idle sessions.
  asio::steady_timer ticker;
  Clock::time_point armed = Clock::time_point::max();
  static constexpr auto kSweep = std::chrono::seconds(5);
  bool stopped = false;

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

  // ---- effects ------------------------------------------------------------------------------

  void apply(gateway::Effects effects) {
    std::deque<gateway::Effect> queue(std::make_move_iterator(effects.begin()),
                                      std::make_move_iterator(effects.end()));
    while (!queue.empty()) {
      gateway::Effect e = std::move(queue.front());
      queue.pop_front();
      gateway::Effects more = std::visit(
          Overloaded{
              [&](gateway::OpenUpstream& o) { return open_upstream(o); },
              [&](gateway::SendUpstream& o) {
                if (auto* up = upstream(o.session, o.stream)) up->writer->push(o.message + "\n");
                return gateway::Effects{};
              },
              [&](gateway::CloseUpstream& o) {
                if (auto* io = session_io(o.session)) {
                  if (auto it = io->upstreams.find(o.stream); it != io->upstreams.end()) {
                    it->second->writer->end();
                    io->upstreams.erase(it);
                  }
                }
                return gateway::Effects{};
              },
              [&](gateway::ToAgent& o) {
                to_agent(o);
                return gateway::Effects{};
              },
              [&](gateway::Record& o) {
                observe(std::move(o.record), o.metered);
                return gateway::Effects{};
              },
              [&](gateway::ArmDeadline& o) {
                if (o.at < armed) {
                  armed = o.at;
                  ticker.cancel();  // the ticker waits for the earlier time now
                }
                return gateway::Effects{};
              },
              [&](gateway::SessionEnded& o) {
                if (auto it = sessions.find(o.session); it != sessions.end()) {
                  for (auto& [k, log] : it->second.logs) log->finish();
                  sessions.erase(it);
                }
                spdlog::debug("MCP session {} ended", o.session.substr(0, 8));
                return gateway::Effects{};
              },
          },
          e);
      for (auto& m : more) queue.push_back(std::move(m));
    }
  }

  SessionIo* session_io(const std::string& id) {
    auto it = sessions.find(id);
    return it == sessions.end() ? nullptr : &it->second;
  }

  UpstreamIo* upstream(const std::string& session, const std::string& stream) {
    auto* io = session_io(session);
    if (!io) return nullptr;
    auto it = io->upstreams.find(stream);
    return it == io->upstreams.end() ? nullptr : it->second.get();
  }

  std::shared_ptr<EventLog> get_log(const std::string& id, SessionIo& io) {
    if (!io.get) {
      io.get = std::make_shared<EventLog>(ex, "g");
      io.get->on_attached = [core = std::weak_ptr<GatewayCore>(core), id](bool on) {
        if (auto c = core.lock()) c->listening(id, on);
      };
      io.logs["g"] = io.get;
    }
    return io.get;
  }

  void to_agent(gateway::ToAgent& o) {
    if (o.exchange == 0) {
      // Something that belongs to no request: the GET stream (kept until the agent opens it,
      // bounded).
      if (auto* io = session_io(o.session)) get_log(o.session, *io)->push(std::move(o.message));
      return;
    }
    auto it = exchanges.find(o.exchange);
    if (it == exchanges.end()) return;
    Exchange& x = *it->second;
    if (x.sse) {
      x.sse->push(std::move(o.message));
      if (o.final) x.sse->finish();
    } else {
      x.early.push_back(std::move(o.message));
      x.http_status = o.http_status;
      x.final_seen = o.final;
      x.wake.cancel();
    }
    if (o.final) exchanges.erase(it);
  }

  void observe(AuditRecord&& r, bool metered) {
    if (r.type == AuditType::kToolRefused) {
      auto* reason = r.detail.if_contains("reason");
      spdlog::info("refused '{}' to agent '{}': {}", r.target, r.actor,
                   reason && reason->is_string() ? std::string_view(reason->as_string()) : "");
    }
    if (metered && m_calls) {
      m_calls->Add({{"method", r.method}, {"tool", r.target}, {"outcome", r.outcome}}).Increment();
      m_latency->Add({{"method", r.method}}, latency_buckets())
          .Observe(static_cast<double>(r.duration_ms) / 1000.0);
      m_bytes_in->Increment(static_cast<double>(r.bytes_in));
      m_bytes_out->Increment(static_cast<double>(r.bytes_out));
      if (r.redactions) m_redactions->Increment(static_cast<double>(r.redactions));
    }
    if (host.audit) host.audit(std::move(r));
  }

  // ---- connector streams --------------------------------------------------------------------

  gateway::Effects open_upstream(const gateway::OpenUpstream& o) {
    SessionIo* io = &sessions[o.session];  // a modern agent's context has none before
    auto stream = host.open_stream(o.connector, o.meta);
    if (!stream) {
      const std::string why =
          stream.error() == make_error_code(Errc::kNotFound)
              ? o.connector.describe() + " is not connected"
              : o.connector.describe() + " cannot take a new stream: " + stream.error().message();
      return core->upstream_closed(o.session, o.stream,
                                   {gateway::StreamEnd::Kind::kNeverOpened, why}, Clock::now());
    }
    auto up = std::make_shared<UpstreamIo>();
    up->connector = o.connector;
    up->stream = *stream;
    up->writer = std::make_shared<StreamWriter>(up->stream);
    io->upstreams[o.stream] = up;
    asio::co_spawn(ex, read_upstream(o.session, o.stream, up),
                   [stream = o.stream](std::exception_ptr e) {
                     log_failure(e, "reading the MCP stream to " + stream);
                   });
    return {};
  }

  // Feeds what the connector sends to the core until the stream ends, then tells it how.
  // Stops quietly once the core has let the stream go (the session ended).
  asio::awaitable<void> read_upstream(std::string session, std::string key,
                                      std::shared_ptr<UpstreamIo> up) {
    auto current = [&] { return upstream(session, key) == up.get(); };
    rpc::LineSplitter lines(config.max_request_body * 4 + 1024);
    gateway::StreamEnd end;
    bool link_lost = false;  // the link went, not just this stream: outcomes are unknown
    for (;;) {
      auto chunk = co_await up->stream->read();
      if (!chunk) {
        end.why = up->stream->reset_reason().empty() ? chunk.error().message()
                                                     : up->stream->reset_reason();
        link_lost = chunk.error() == make_error_code(Errc::kLinkClosed);
        break;
      }
      if (chunk->empty()) {
        end.why = up->connector.describe() + " ended the session";
        up->writer->end();  // and so does this side: the stream is done
        break;
      }
      if (!lines.feed(*chunk)) {
        end.why = up->connector.describe() + " sent an oversized message";
        up->stream->reset(proto::ResetCode::kProtocolError, end.why);
        break;
      }
      while (auto line = lines.next()) {
        if (!current()) co_return;
        proto::McpEnvelope envelope;
        std::string error;
        if (!proto::parse_envelope(*line, envelope, error)) {
          spdlog::warn("{} sent a malformed envelope ({}); ignored", up->connector.describe(),
                       error);
          continue;
        }
        apply(core->upstream_line(session, key, *line, Clock::now()));
      }
    }
    if (!current()) co_return;
    sessions.at(session).upstreams.erase(key);
    using Kind = gateway::StreamEnd::Kind;
    if (up->stream->reset_code() == proto::ResetCode::kRefused) {
      end.kind = Kind::kRefused;
    } else if (link_lost || !host.is_live(up->connector)) {
      end.kind = Kind::kLinkLost;
    } else {
      end.kind = Kind::kEnded;
    }
    apply(core->upstream_closed(session, key, end, Clock::now()));
  }

  // ---- time ---------------------------------------------------------------------------------

  asio::awaitable<void> tick() {
    auto last_sweep = Clock::now();
    while (!stopped) {
      ticker.expires_at(std::min(armed, last_sweep + kSweep));
      co_await ticker.async_wait(kUseTuple);  // cancelled: armed earlier, or stopping
      if (stopped) co_return;
      const auto now = Clock::now();
      const bool sweep = now >= last_sweep + kSweep;
      if (now < armed && !sweep) continue;
      armed = Clock::time_point::max();
      apply(core->time_passed(now));
      if (sweep) {
        last_sweep = now;
        forget_finished_streams(now);
      }
    }
  }

  // Finished POST streams stay resumable for a minute.
  void forget_finished_streams(Clock::time_point now) {
    for (auto& [id, io] : sessions) {
      for (auto l = io.logs.begin(); l != io.logs.end();) {
        if (l->second->finished() && l->first != "g") {
          if (l->second->finished_at == Clock::time_point{}) l->second->finished_at = now;
          if (now - l->second->finished_at > std::chrono::minutes(1)) {
            l = io.logs.erase(l);
            continue;
          }
        }
        ++l;
      }
    }
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
    gateway::CatalogView view;
    auto b = std::make_shared<std::vector<Binding>>(bindings);
    std::vector<std::string> conflicts;
    view.catalog = std::make_shared<Catalog>(Catalog::build(*b, live_inventories(), conflicts));
    for (const auto& msg : conflicts) spdlog::warn("catalog: {}", msg);
    view.bindings = b;  // the catalog's routes point into this vector
    view.inventories = std::make_shared<std::map<ConnectorRef, ConnectorInventory>>(inventories);
    apply(core->set_catalog(std::move(view)));
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
    if (req.method == "POST") co_return co_await handle_post(req, *agent);
    const std::string pv = req.header("mcp-protocol-version");
    if (!pv.empty() && !GatewayCore::session_version(pv)) co_return unsupported_version(pv);
    const std::string sid = req.header("mcp-session-id");
    if (!sid.empty() && !core->touch(sid, agent->name, Clock::now())) {
      co_return rpc_error_http(404, nullptr, rpc::kInvalidRequest,
                               "Session not found: it ended or never existed; initialize a new "
                               "one");
    }
    if (req.method == "DELETE") {
      if (sid.empty()) {
        co_return rpc_error_http(400, nullptr, rpc::kInvalidRequest,
                                 "Bad Request: Mcp-Session-Id header is required");
      }
      apply(core->end_session(sid, "the client ended the session", Clock::now()));
      co_return HttpResponse::json(200, "{}");
    }
    co_return open_get(req, sid);
  }

  HttpResponse open_get(const HttpRequest& req, const std::string& sid) {
    const std::string accept = req.header("accept");
    if (accept.find("text/event-stream") == std::string::npos) {
      return rpc_error_http(406, nullptr, rpc::kInvalidRequest,
                            "Not Acceptable: the GET stream needs 'Accept: text/event-stream'");
    }
    SessionIo* io = sid.empty() ? nullptr : session_io(sid);
    if (!io) {
      return rpc_error_http(400, nullptr, rpc::kInvalidRequest,
                            "Bad Request: Mcp-Session-Id header is required");
    }
    std::shared_ptr<EventLog> log;
    uint64_t from = 0;
    const std::string last = req.header("last-event-id");
    if (!last.empty()) {
      const auto dash = last.rfind('-');
      auto it = dash == std::string::npos ? io->logs.end() : io->logs.find(last.substr(0, dash));
      if (it == io->logs.end()) {
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
      log = get_log(sid, *io);
      if (log->attached()) {
        return rpc_error_http(409, nullptr, rpc::kInvalidRequest,
                              "Conflict: this session already has an open GET stream");
      }
    }
    HttpResponse r;
    r.content_type = "text/event-stream";
    r.headers.emplace_back("Mcp-Session-Id", sid);
    r.stream = std::make_shared<SseConsumer>(log, from, config.mcp.sse_keepalive,
                                             static_cast<long>(config.mcp.sse_retry.count()));
    return r;
  }

  std::shared_ptr<Exchange> open_exchange(uint64_t& number) {
    number = next_exchange++;
    auto x = std::make_shared<Exchange>(ex);
    exchanges[number] = x;
    return x;
  }

  asio::awaitable<HttpResponse> handle_post(const HttpRequest& req, const AgentRecord& agent) {
    const std::string accept = req.header("accept");
    if (!accept.empty() && accept.find("application/json") == std::string::npos &&
        accept.find("text/event-stream") == std::string::npos &&
        accept.find("*/*") == std::string::npos) {
      co_return rpc_error_http(406, nullptr, rpc::kInvalidRequest,
                               "Not Acceptable: POST /mcp answers application/json or "
                               "text/event-stream");
    }
    const GatewayCore::Agent who{agent.name, agent.tools};
    gateway::RequestHeaders headers{req.header("mcp-protocol-version"), req.header("mcp-method"),
                                    ""};
    if (auto name = mcp::decode_header_value(req.header("mcp-name"))) {
      headers.name = std::move(*name);
    } else {
      co_return rpc_error_http(400, nullptr, rpc::kHeaderMismatch,
                               "Header mismatch: Mcp-Name is not valid =?base64?…?= text");
    }
    for (const auto& [name, value] : req.headers) {
      constexpr std::string_view kParam = "mcp-param-";
      if (name.starts_with(kParam)) headers.params.emplace_back(name.substr(kParam.size()), value);
    }
    uint64_t number = 0;
    if (!headers.method.empty()) {
      // Refused from the headers before the body is read; checked again against the body.
      const uint64_t n = next_exchange++;
      if (auto refused = core->refuse_by_headers(who, headers, n, Clock::now()); !refused.empty()) {
        auto x = std::make_shared<Exchange>(ex);
        exchanges[n] = x;
        apply(std::move(refused));
        exchanges.erase(n);
        co_return HttpResponse::json(x->http_status, x->early.empty() ? "" : x->early.front());
      }
    }
    std::string error;
    bool batch = false;
    auto msg = rpc::parse(req.body, error, &batch);
    if (!msg) {
      co_return rpc_error_http(400, nullptr, batch ? rpc::kInvalidRequest : rpc::kParseError,
                               (batch ? "" : "Parse error: ") + error);
    }
    if (GatewayCore::is_modern(*msg, headers.protocol_version)) {
      co_return co_await modern_post(who, headers, std::move(*msg), req.body.size());
    }
    if (!headers.protocol_version.empty() &&
        !GatewayCore::session_version(headers.protocol_version)) {
      co_return unsupported_version(headers.protocol_version);
    }
    const std::string sid = req.header("mcp-session-id");
    // A session id presented with another agent's key is as unknown as a made-up one.
    if (!sid.empty() && !core->touch(sid, agent.name, Clock::now())) {
      co_return rpc_error_http(404, nullptr, rpc::kInvalidRequest,
                               "Session not found: it ended or never existed; initialize a new "
                               "one");
    }
    if (msg->kind == rpc::Kind::kRequest && msg->method() == "initialize") {
      if (!sid.empty()) {
        co_return rpc_error_http(400, msg->id(), rpc::kInvalidRequest,
                                 "Bad Request: initialize must not carry Mcp-Session-Id");
      }
      const std::string id = random_hex(32);
      const std::string tag = random_hex(6);
      auto x = open_exchange(number);
      sessions[id];  // so that what the core sends this session has somewhere to go
      apply(core->initialize(id, tag, who, *msg, number, Clock::now()));
      exchanges.erase(number);
      const bool opened = core->touch(id, agent.name, Clock::now());
      if (!opened) sessions.erase(id);
      HttpResponse r = HttpResponse::json(x->http_status, x->early.empty() ? "" : x->early.front());
      if (opened) {
        spdlog::info("agent '{}' opened MCP session {}", agent.name, tag);
        r.headers.emplace_back("Mcp-Session-Id", id);
      }
      co_return r;
    }
    if (sid.empty()) {
      co_return rpc_error_http(400, msg->kind == rpc::Kind::kRequest ? msg->id() : json::value(),
                               rpc::kInvalidRequest,
                               "Bad Request: Mcp-Session-Id header is required (initialize "
                               "first)");
    }
    if (msg->kind != rpc::Kind::kRequest) {
      apply(core->agent_message(sid, std::move(*msg), req.body.size(), 0, Clock::now()));
      co_return HttpResponse::json(202, "");
    }
    auto x = open_exchange(number);
    apply(core->agent_message(sid, std::move(*msg), req.body.size(), number, Clock::now()));
    co_return co_await answer(x, number, session_io(sid));
  }

  // A request of MCP 2026-07-28: no session; `Mcp-Session-Id` and `Last-Event-ID` are ignored.
  asio::awaitable<HttpResponse> modern_post(GatewayCore::Agent who, gateway::RequestHeaders headers,
                                            rpc::Message msg, size_t bytes) {
    if (msg.kind == rpc::Kind::kResponse) {
      co_return rpc_error_http(400, nullptr, rpc::kInvalidRequest,
                               "Bad Request: in MCP 2026-07-28 a client sends no responses");
    }
    if (msg.kind == rpc::Kind::kNotification) co_return HttpResponse::json(202, "");
    uint64_t number = 0;
    auto x = open_exchange(number);
    apply(core->modern_request(who, headers, std::move(msg), bytes, number, Clock::now()));
    co_return co_await answer(x, number, nullptr);
  }

  // Waits for the first of the exchange's messages: one final answer is sent as JSON; anything
  // else first switches to an SSE stream. `io`: the session whose streams can be resumed
  // (none for a modern request, whose closing its stream cancels it). A modern request still
  // unanswered after sse_keepalive switches to SSE too, with nothing in it yet: its keep-alives
  // are how a client that went away is noticed, and its call cancelled.
  asio::awaitable<HttpResponse> answer(std::shared_ptr<Exchange> x, uint64_t number,
                                       SessionIo* io) {
    if (!io) x->wake.expires_after(config.mcp.sse_keepalive);
    if (x->early.empty()) co_await x->wake.async_wait(kUseTuple);
    if (x->final_seen && x->early.size() == 1) {
      co_return HttpResponse::json(x->http_status, std::move(x->early.front()));
    }
    // Notifications or server requests came first: answer as an SSE stream.
    auto log = std::make_shared<EventLog>(ex, "p" + std::to_string(io ? io->next_stream++ : 0));
    for (auto& m : x->early) log->push(std::move(m));
    x->early.clear();
    if (x->final_seen) log->finish();
    x->sse = log;
    HttpResponse r;
    r.content_type = "text/event-stream";
    r.headers.emplace_back("X-Accel-Buffering", "no");
    if (io) {
      io->logs[log->key()] = log;
      r.stream = std::make_shared<SseConsumer>(log, 0, config.mcp.sse_keepalive,
                                               static_cast<long>(config.mcp.sse_retry.count()));
    } else {
      auto gone = [this, core = std::weak_ptr<GatewayCore>(core), number] {
        if (core.expired()) return;
        asio::post(ex, [this, core, number] {
          if (!core.expired()) apply(core.lock()->exchange_gone(number, Clock::now()));
        });
      };
      r.stream = std::make_shared<SseConsumer>(log, 0, config.mcp.sse_keepalive, -1, gone);
    }
    co_return r;
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
  asio::co_spawn(impl_->ex, impl_->tick(),
                 [](std::exception_ptr e) { log_failure(e, "the MCP gateway's ticker"); });
}

void McpGateway::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->ticker.cancel();
  impl_->apply(impl_->core->end_all("airlockd is shutting down", Clock::now()));
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
  const auto& cat = *impl_->core->catalog().catalog;
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

size_t McpGateway::session_count() const { return impl_->core->session_count(); }

}  // namespace airlock::controlplane
