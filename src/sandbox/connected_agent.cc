#include "sandbox/connected_agent.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <sstream>

#include "common/backoff.h"
#include "common/connector_cli.h"
#include "common/jsonrpc.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/token.h"
#include "sandbox/agent_run.h"
#include "sandbox/image.h"
#include "sandbox/sandbox.h"

namespace airlock::sandbox {
namespace json = boost::json;
namespace rpc = jsonrpc;
namespace {

std::string format_duration(std::chrono::milliseconds d) {
  const auto s = d.count() / 1000;
  if (s % 3600 == 0 && s >= 3600) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0 && s >= 60) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

}  // namespace

// A session that could not get a sandbox because every one is in use: the stream is refused
// with the reason at its first request (a refusal: nothing was lost), which airlockd turns into
// a tool error; its next request opens another stream, which may find room. (A RESET would
// overtake a result queued before it, so the reason travels in the RESET alone.)
class SandboxAgent::BusySession final : public McpBackendSession {
 public:
  BusySession(End end, std::string why) : end_(std::move(end)), why_(std::move(why)) {}
  void send(json::object message) override {
    if (message.contains("method") && message.contains("id")) {
      end_(proto::ResetCode::kRefused, why_);
    }
  }
  void close() override {}

 private:
  End end_;
  std::string why_;
};

// One agent MCP session: its sandbox, its calls in flight, its idle timer. A stateless stream
// (a 2026-07-28 agent's) has no sandbox of its own: its calls run in sandboxes named by handle.
class SandboxAgent::ToolSession final : public McpBackendSession,
                                        public std::enable_shared_from_this<ToolSession> {
 public:
  ToolSession(SandboxAgent& agent, std::shared_ptr<SandboxSession> sandbox, Emit emit, End end,
              std::string agent_name)
      : agent_(agent),
        sandbox_(std::move(sandbox)),
        emit_(std::move(emit)),
        end_(std::move(end)),
        agent_name_(std::move(agent_name)),
        idle_(agent.executor_) {}

  void start() { arm_idle(); }

  void send(json::object message) override {
    std::string error;
    auto msg = rpc::classify(json::value(std::move(message)), error);
    if (!msg) return;
    if (msg->kind == rpc::Kind::kNotification) {
      if (msg->method() == "notifications/cancelled") {
        const auto* p = msg->params();
        const json::value* rid = p ? p->if_contains("requestId") : nullptr;
        if (!rid) return;
        if (auto it = calls_.find(rpc::id_key(*rid)); it != calls_.end()) {
          it->second.sandbox->cancel(it->second.id);
        }
      }
      return;
    }
    if (msg->kind != rpc::Kind::kRequest) return;
    const std::string method(msg->method());
    if (method == "tools/call") {
      asio::co_spawn(agent_.executor_, call(shared_from_this(), std::move(*msg)),
                     [](std::exception_ptr e) { log_failure(e, "a tool call"); });
      return;
    }
    if (method == "ping" || method == "logging/setLevel") {
      emit_(rpc::make_result(msg->id(), json::object{}), msg->id());
      return;
    }
    if (method == "tools/list") {
      emit_(rpc::make_result(msg->id(), json::object{{"tools", agent_.toolset_->definitions()}}),
            msg->id());
      return;
    }
    emit_(rpc::make_error(msg->id(), rpc::kMethodNotFound,
                          "sandbox-agent serves tools only; no " + method),
          msg->id());
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    idle_.cancel();
    // Calls in sandboxes held by handle outlive the stream's sandbox: stop them too.
    for (const auto& [key, running] : calls_) {
      if (running.sandbox != sandbox_) running.sandbox->cancel(running.id);
    }
    agent_.sessions_.erase(shared_from_this());
    if (!sandbox_) return;
    sandbox_->close();
    agent_.session_ended();
  }

  bool busy() const { return !calls_.empty(); }
  // Stopping: a session with nothing in flight ends now.
  void end_if_idle(const std::string& why) {
    if (!calls_.empty() || closed_) return;
    end_(proto::ResetCode::kUnavailable, why);
  }

 private:
  asio::awaitable<void> call(std::shared_ptr<ToolSession> self, rpc::Message msg) {
    const json::value id = msg.id();
    const json::object* params = msg.params();
    std::string name;
    json::value args;
    json::value progress_token;
    if (params) {
      if (auto* n = params->if_contains("name"); n && n->is_string()) name = n->as_string();
      if (auto* a = params->if_contains("arguments")) args = *a;
      if (auto* meta = params->if_contains("_meta"); meta && meta->is_object()) {
        if (auto* t = meta->as_object().if_contains("progressToken")) progress_token = *t;
      }
    }
    ++agent_.calls_total_;
    if (!args.is_null() && !args.is_object()) {
      emit_(rpc::make_result(id, Toolset::error_result("Invalid arguments for tool '" + name +
                                                       "': arguments must be an object")),
            id);
      co_return;
    }
    if (name == kSandboxOpen || name == kSandboxClose) {
      emit_(rpc::make_result(id, agent_.by_handle(name, agent_name_, args)), id);
      co_return;
    }
    // The sandbox named by sandbox_id, or else the session's own.
    std::string handle;
    if (const json::value* h =
            args.is_object() ? args.as_object().if_contains(kSandboxId) : nullptr) {
      if (!h->is_string()) {
        emit_(rpc::make_result(id, Toolset::error_result("Invalid arguments for tool '" + name +
                                                         "': sandbox_id: must be string")),
              id);
        co_return;
      }
      handle = std::string(h->as_string());
      args.as_object().erase(kSandboxId);
    }
    toolbox::Request request;
    std::string error;
    if (!agent_.toolset_->to_request(name, args, request, error)) {
      emit_(rpc::make_result(id, Toolset::error_result(error)), id);
      co_return;
    }
    std::shared_ptr<SandboxSession> sandbox = sandbox_;
    if (!handle.empty()) {
      sandbox = agent_.handles_->find(agent_name_, handle, error);
    } else if (!sandbox) {
      error =
          "this agent has no MCP session (MCP 2026-07-28), so no sandbox carries over "
          "between its calls: call sandbox_open once, then pass the sandbox_id it returns "
          "to '" +
          name + "' and to every later call";
    }
    if (!sandbox) {
      emit_(rpc::make_result(id, Toolset::error_result(error)), id);
      co_return;
    }
    if (handle.empty() && sandbox_->ended()) {
      const std::string why = "the sandbox of this session ended (" + sandbox_->ended_reason() +
                              "); its workspace and shell are gone — call again to start a "
                              "new session";
      emit_(rpc::make_result(id, Toolset::error_result(why)), id);
      end_(proto::ResetCode::kUnavailable, why);
      co_return;
    }
    const std::string key = rpc::id_key(id);
    request.id = sandbox->allocate_id();
    calls_[key] = Running{sandbox, request.id};
    agent_.pool_->call_started();
    if (handle.empty()) {
      idle_.cancel();
    } else {
      agent_.handles_->call_started(handle);
    }
    auto progress = [this, self, id, progress_token](uint64_t elapsed_ms) {
      if (progress_token.is_null()) return;
      emit_(rpc::make_notification(
                "notifications/progress",
                json::object{{"progressToken", progress_token},
                             {"progress", elapsed_ms},
                             {"message", "running for " + std::to_string(elapsed_ms / 1000) + " s"}}),
            id);
    };
    const auto started = std::chrono::steady_clock::now();
    auto reply = co_await sandbox->call(std::move(request), progress);
    calls_.erase(key);
    agent_.pool_->call_finished();
    if (!handle.empty()) agent_.handles_->call_finished(handle);
    spdlog::debug("session {}: {} took {} µs in the sandbox", sandbox->id(), name,
                  std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count());
    if (closed_) co_return;
    if (!reply && !handle.empty()) {
      // Only that sandbox is gone; the stream and the agent's other sandboxes carry on.
      const std::string why = "sandbox " + handle + " ended while '" + name + "' ran (" +
                              sandbox->ended_reason() +
                              "); its workspace and shell are gone — call sandbox_open for a "
                              "new one";
      std::string unused;
      agent_.handles_->remove(agent_name_, handle, unused);
      emit_(rpc::make_result(id, Toolset::error_result(why)), id);
      co_return;
    }
    if (!reply) {
      const std::string why = "the sandbox of this session ended while '" + name +
                              "' ran (" + sandbox_->ended_reason() +
                              "); its workspace and shell are gone — call again to start a new "
                              "session";
      emit_(rpc::make_result(id, Toolset::error_result(why)), id);
      end_(proto::ResetCode::kUnavailable, why);
      co_return;
    }
    emit_(rpc::make_result(id, Toolset::to_result(name, *reply)), id);
    arm_idle();
  }

  void arm_idle() {
    // A stateless stream has no sandbox to idle out; airlockd ends the stream.
    if (closed_ || !calls_.empty() || !sandbox_) return;
    idle_.expires_after(agent_.options_.config.session_idle_timeout);
    idle_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      auto self = weak.lock();
      if (!self || self->closed_ || !self->calls_.empty()) return;
      ++self->agent_.idle_ended_;
      const std::string why =
          "the sandbox session was idle for " +
          format_duration(self->agent_.options_.config.session_idle_timeout) +
          " (session_idle_timeout) and was removed with its workspace and shell";
      spdlog::info("session {} of agent '{}': {}", self->sandbox_->id(), self->agent_name_, why);
      self->sandbox_->close();
      self->end_(proto::ResetCode::kUnavailable, why);
    });
  }

  SandboxAgent& agent_;
  std::shared_ptr<SandboxSession> sandbox_;
  Emit emit_;
  End end_;
  std::string agent_name_;
  asio::steady_timer idle_;
  struct Running {
    std::shared_ptr<SandboxSession> sandbox;
    uint64_t id = 0;  // the toolbox request id
  };
  std::map<std::string, Running> calls_;  // agent request id -> where it runs
  bool closed_ = false;
};

SandboxAgent::SandboxAgent(asio::any_io_executor ex, SandboxAgentOptions options)
    : executor_(ex), options_(std::move(options)) {
  if (!options_.secrets) {
    options_.secrets = std::make_shared<secrets::SecretStore>(options_.config.secrets);
    options_.secrets->load();
  }
  pool_ =
      std::make_unique<SandboxPool>(ex, SandboxPoolOptions{.config = options_.config,
                                                           .secrets = options_.secrets,
                                                           .image = options_.image,
                                                           .toolbox_path = options_.toolbox_path,
                                                           .runtime_dir = options_.runtime_dir});
  ToolsetLimits limits;
  limits.max_timeout = options_.config.resources.wall_time;
  limits.default_timeout = std::min(limits.default_timeout, limits.max_timeout);
  limits.handle_idle_timeout = options_.config.session_idle_timeout;
  toolset_ = std::make_unique<Toolset>(options_.config.custom_tools, limits);
  handles_ = std::make_unique<SandboxHandles>(
      ex, options_.config.session_idle_timeout,
      [this](const std::string& handle, const std::string& agent, bool idle) {
        if (idle) {
          ++idle_ended_;
          spdlog::info(
              "agent '{}': sandbox {} was idle for {} (session_idle_timeout) and was "
              "removed with its workspace and shell",
              agent, handle, format_duration(options_.config.session_idle_timeout));
        } else {
          spdlog::info("agent '{}': sandbox {} removed", agent, handle);
        }
        session_ended();
      });
  service_ = std::make_unique<McpService>(ex, "sandbox-agent", static_cast<McpBackend&>(*this));
  service_->redact_links(options_.connector, options_.secrets);
  auto& hello = options_.connector.hello;
  const auto& c = options_.config;
  hello.kind = proto::ConnectorKind::kSandbox;
  hello.software = "sandbox-agent/" AIRLOCK_VERSION;
  hello.instance = random_hex(8);
  std::vector<std::string> credential_names;
  for (const auto& cr : c.credentials) credential_names.push_back(cr.secret);
  std::vector<std::string> tool_names;
  for (const auto& t : toolset_->definitions()) {
    tool_names.emplace_back(t.as_object().at("name").as_string());
  }
  hello.inventory = {{.name = std::string(proto::kSandboxToolset),
                      .url = "sandbox:" + c.image,
                      .credentials = credential_names,
                      .tools = tool_names}};
  hello.sandbox = proto::SandboxDescription{
      .image = c.image,
      .image_digest = options_.image.digest,
      .cpu = c.resources.cpu_millis ? format_cpu(c.resources.cpu_millis) : "",
      .memory = c.resources.memory_bytes ? format_bytes(c.resources.memory_bytes) : "",
      .pids = c.resources.pids,
      .allowed_outbound = c.allowed_outbound,
      .max_sessions = c.max_sessions};
  options_.connector.dial.user_agent = hello.software;
  options_.connector.on_link_up = [this](std::shared_ptr<Link> link) {
    service_->on_link_up(link);
    push_load(link);
  };
  connector_ = std::make_unique<Connector>(ex, options_.connector,
                                           [this](std::shared_ptr<LinkStream> s) {
                                             service_->on_stream(std::move(s));
                                           });
  service_->attach(*connector_);
}

SandboxAgent::~SandboxAgent() = default;

void SandboxAgent::start() {
  pool_->start();
  if (!options_.metrics_addr.empty()) {
    metrics_ = metrics_listener(executor_, options_.metrics_addr,
                                [this](HttpRequest r) { return metrics_handler(std::move(r)); });
  }
}

asio::awaitable<void> SandboxAgent::run() {
  const auto& c = options_.config;
  spdlog::info(
      "sandbox-agent {} starting: sandbox '{}', image {}, cpu {}, memory {}, {} "
      "allowed outbound, max_sessions {}, warm pool {}, {} link(s)",
      AIRLOCK_VERSION, c.name, c.image,
      c.resources.cpu_millis ? format_cpu(c.resources.cpu_millis) : "unlimited",
      c.resources.memory_bytes ? format_bytes(c.resources.memory_bytes) : "unlimited",
      c.allowed_outbound.size(), c.max_sessions, std::min(c.warm_pool, c.max_sessions),
      options_.connector.ha_connections);
  if (metrics_) asio::co_spawn(executor_, metrics_->serve(), asio::detached);
  asio::co_spawn(executor_, pool_->check([this] { service_->inventory_changed(); }),
                 [](std::exception_ptr e) { log_failure(e, "the sandbox check"); });
  co_await connector_->run();
}

std::string SandboxAgent::refuse(const proto::McpStreamOpen& open) const {
  if (open.server == proto::kSandboxToolset) return "";
  return "sandbox-agent offers one server, '" + std::string(proto::kSandboxToolset) +
         "', not '" + open.server + "'";
}

size_t SandboxAgent::max_message(const std::string&) const {
  // A tool argument may be as large as the toolset accepts, plus the JSON-RPC around it.
  return 32 * 1024 * 1024;
}

std::shared_ptr<McpBackendSession> SandboxAgent::open_session(const proto::McpStreamOpen& open,
                                                              Emit emit, End end,
                                                              std::string& problem) {
  if (open.stateless) {
    // A 2026-07-28 agent: nothing is kept per stream, so no sandbox is taken for it.
    auto session =
        std::make_shared<ToolSession>(*this, nullptr, std::move(emit), std::move(end), open.agent);
    sessions_.insert(session);
    session->start();
    return session;
  }
  bool busy = false;
  auto sandbox = pool_->acquire(problem, busy);
  if (busy) {
    ++sessions_busy_;
    spdlog::warn("agent '{}': {}", open.agent, problem);
    return std::make_shared<BusySession>(std::move(end), std::exchange(problem, {}));
  }
  if (!sandbox) return nullptr;
  ++sessions_total_;
  auto session = std::make_shared<ToolSession>(*this, std::move(sandbox), std::move(emit),
                                               std::move(end), open.agent);
  sessions_.insert(session);
  session->start();
  spdlog::info("agent '{}' session {}: sandbox {} ({} of {} in use)", open.agent, open.session,
               "assigned", pool_->in_use(), options_.config.max_sessions);
  push_load();
  return session;
}

json::object SandboxAgent::by_handle(const std::string& tool, const std::string& agent,
                                     const json::value& args) {
  std::string error;
  if (!toolset_->check_handle_arguments(tool, args, error)) return Toolset::error_result(error);
  if (tool == kSandboxClose) {
    const std::string handle(args.at(kSandboxId).as_string());
    if (!handles_->remove(agent, handle, error)) return Toolset::error_result(error);
    return Toolset::text_result("Closed sandbox " + handle + "; its workspace and shell are gone.");
  }
  if (stopping_) return Toolset::error_result("sandbox-agent is stopping; it opens no sandbox");
  std::string problem;
  bool busy = false;
  auto sandbox = pool_->acquire(problem, busy);
  if (!sandbox) {
    if (busy) ++sessions_busy_;
    spdlog::warn("agent '{}': {}", agent, problem);
    return Toolset::error_result(problem);
  }
  ++sessions_total_;
  const std::string handle = handles_->add(agent, std::move(sandbox));
  spdlog::info("agent '{}': sandbox {} opened by handle ({} of {} in use)", agent, handle,
               pool_->in_use(), options_.config.max_sessions);
  push_load();
  return toolset_->opened_result(handle);
}

void SandboxAgent::session_ended() {
  pool_->release();
  push_load();
}

void SandboxAgent::push_load(const std::shared_ptr<Link>& link) {
  auto target = link;
  for (const auto& l : connector_->links()) {
    if (target) break;
    if (!l->closed() && !l->draining()) target = l;
  }
  if (!target || target->closed() || target->draining()) return;
  const std::string body = proto::serialize(proto::SessionLoad{
      .in_use = static_cast<uint32_t>(pool_->in_use()), .limit = options_.config.max_sessions});
  if (auto s = target->open(proto::stream_meta(proto::StreamKind::kLoad), body, true); !s) {
    spdlog::debug("could not report the load to airlockd: {}", s.error().message());
  }
}

proto::InventoryReport SandboxAgent::inventory() const {
  json::object server{
      {"name", std::string(proto::kSandboxToolset)},
      {"url", "sandbox:" + options_.config.image},
      {"status", pool_->status_name()},
      {"capabilities", json::object{{"tools", json::object{}}}},
      {"serverInfo", json::object{{"name", "sandbox-agent"}, {"version", AIRLOCK_VERSION}}},
      {"tools", toolset_->definitions()}};
  if (!pool_->error().empty()) server["error"] = pool_->error();
  json::array credentials;
  for (const auto& c : options_.config.credentials) credentials.push_back(json::string(c.secret));
  server["credentials"] = std::move(credentials);
  return proto::InventoryReport{{std::move(server)}};
}

asio::awaitable<void> SandboxAgent::stop() {
  stopping_ = true;
  pool_->stop();
  // Sessions with nothing in flight end now; busy ones when their call is answered (their
  // stream ends with the link's drain).
  for (const auto& s : std::set<std::shared_ptr<ToolSession>>(sessions_)) {
    s->end_if_idle("sandbox-agent is stopping");
  }
  service_->stop();
  if (metrics_) metrics_->stop();
  co_await connector_->stop();
  for (const auto& s : std::set<std::shared_ptr<ToolSession>>(sessions_)) s->close();
  handles_->remove_all();
  // Each sandbox's teardown (its processes killed, its cgroup removed) finishes before exit.
  co_await pool_->wait_all(std::chrono::seconds(10));
}

asio::awaitable<HttpResponse> SandboxAgent::metrics_handler(HttpRequest req) {
  const auto& st = connector_->stats();
  const auto& served = service_->stats();
  if (req.path() == "/ready") {
    const bool ok = pool_->status() == SandboxPool::Status::kOk;
    if (connector_->ready() && ok) co_return HttpResponse::json(200, R"({"ready":true})");
    co_return HttpResponse::json(
        503, json::serialize(json::object{{"ready", false},
                                          {"last_error", ok ? st.last_error : pool_->error()}}));
  }
  if (req.path() != "/metrics") {
    co_return HttpResponse::error(404, "not_found", "only /ready and /metrics are served here");
  }
  Metrics m;
  m.add("airlock_sandbox_links_active", kGauge, "Established links to airlockd.", st.active_links);
  m.add("airlock_sandbox_connects_total", kCounter, "Links established.", st.connects);
  m.add("airlock_sandbox_dial_failures_total", kCounter, "Attempts that did not establish a link.",
        st.dial_failures);
  m.add("airlock_sandbox_sessions_in_use", kGauge, "Agent sessions with a sandbox now.",
        pool_->in_use());
  m.add("airlock_sandbox_sessions_limit", kGauge, "max_sessions.", options_.config.max_sessions);
  m.add("airlock_sandbox_sessions_total", kCounter, "Agent sessions served.", sessions_total_);
  m.add("airlock_sandbox_sessions_busy_total", kCounter,
        "Sessions refused because max_sessions were in use.", sessions_busy_);
  m.add("airlock_sandbox_sessions_idle_ended_total", kCounter,
        "Sessions ended by session_idle_timeout.", idle_ended_);
  m.add("airlock_sandbox_handles_open", kGauge,
        "Sandboxes held by handle (sandbox_open), counted in sessions_in_use too.",
        handles_->size());
  m.add("airlock_sandbox_warm_pool", kGauge, "Sandboxes started ahead.", pool_->warm());
  m.add("airlock_sandbox_calls_total", kCounter, "Tool calls received.", calls_total_);
  m.add("airlock_sandbox_redactions_total", kCounter,
        "Secret occurrences redacted from what was sent.", served.redactions_total);
  m.add("airlock_sandbox_streams_refused_total", kCounter,
        "Streams of a kind or for a server this agent does not serve.", served.streams_refused);
  co_return m.response();
}

}  // namespace airlock::sandbox
