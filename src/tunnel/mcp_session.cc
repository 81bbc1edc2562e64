#include "tunnel/mcp_session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include "common/jsonrpc.h"

namespace airlock::tunnel {
namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
}

bool is_idempotent(std::string_view m) {
  return m == "ping" || m == "tools/list" || m == "resources/list" || m == "resources/read" ||
         m == "resources/templates/list" || m == "prompts/list" || m == "prompts/get" ||
         m == "completion/complete" || m == "logging/setLevel" || m == "resources/subscribe" ||
         m == "resources/unsubscribe";
}

UpstreamSession::UpstreamSession(asio::any_io_executor ex, const UpstreamServer& server,
                                 json::object client, Deliver deliver, Injection injection,
                                 std::shared_ptr<ChildProcesses> children)
    : ex_(ex),
      server_(server),
      injection_(std::move(injection)),
      children_(std::move(children)),
      client_(std::move(client)),
      deliver_(std::move(deliver)) {}

UpstreamSession::~UpstreamSession() {
  if (transport_) transport_->close();
}

void UpstreamSession::send(json::object message) {
  if (state_ == State::kClosed) return;
  std::string error;
  auto msg = jsonrpc::classify(json::value(std::move(message)), error);
  if (!msg) return;  // airlockd validated it; nothing sensible to answer
  switch (msg->kind) {
    case jsonrpc::Kind::kRequest: {
      const int64_t up = next_id_++;
      Pending p;
      p.downstream_id = msg->id();
      p.method = std::string(msg->method());
      p.message = std::move(msg->body);
      p.message["id"] = up;
      by_downstream_[jsonrpc::id_key(p.downstream_id)] = up;
      pending_.emplace(up, std::move(p));
      if (state_ == State::kReady)
        transmit_pending(up);
      else
        ensure_connecting();
      return;
    }
    case jsonrpc::Kind::kNotification: {
      if (msg->method() == "notifications/cancelled") {
        auto* params = msg->params();
        const json::value* rid = params ? params->if_contains("requestId") : nullptr;
        if (!rid) return;
        auto it = by_downstream_.find(jsonrpc::id_key(*rid));
        if (it == by_downstream_.end()) return;  // already answered
        const int64_t up = it->second;
        by_downstream_.erase(it);
        pending_.erase(up);
        msg->body["params"].as_object()["requestId"] = up;
      }
      if (state_ == State::kReady) transmit(msg->body);
      // Notifications before the session exists concern nothing the server knows of.
      return;
    }
    case jsonrpc::Kind::kResponse:
      // An answer to a server request: the server's own id travels unchanged.
      if (state_ == State::kReady) transmit(msg->body);
      return;
  }
}

void UpstreamSession::transmit_pending(int64_t up) {
  auto it = pending_.find(up);
  if (it == pending_.end() || it->second.sent) return;
  it->second.sent = true;
  transmit(it->second.message);
}

void UpstreamSession::transmit(const json::object& message) {
  std::string error;
  if (!transport_ || !transport_->send(message, error)) {
    on_lost(error.empty() ? "session closed" : error);
  }
}

void UpstreamSession::ensure_connecting() {
  if (state_ != State::kIdle) return;
  state_ = State::kConnecting;
  asio::co_spawn(ex_, connect(shared_from_this()), asio::detached);
}

asio::awaitable<void> UpstreamSession::connect(
    [[maybe_unused]] std::shared_ptr<UpstreamSession> self) {
  const auto now = std::chrono::steady_clock::now();
  if (next_attempt_ > now) {
    asio::steady_timer t(ex_, next_attempt_ - now);
    co_await t.async_wait(kUseTuple);
    if (state_ == State::kClosed) co_return;
  }
  auto transport = std::shared_ptr<UpstreamTransport>(make_transport(ex_, server_, injection_, children_));
  transport_ = transport;
  std::string error;
  bool ok = false;
  ok = co_await transport->open(error);  // bounded by connect_timeout
  if (ok && state_ != State::kClosed) {
    asio::co_spawn(ex_, read_loop(self, transport), asio::detached);
    // initialize, bounded by connect_timeout.
    json::object params = client_;
    if (!params.contains("protocolVersion")) params["protocolVersion"] = "2025-11-25";
    if (!params.contains("capabilities")) params["capabilities"] = json::object{};
    if (!params.contains("clientInfo")) {
      params["clientInfo"] = json::object{{"name", "mcp-tunnel"}, {"version", AIRLOCK_VERSION}};
    }
    const int64_t up = next_id_++;
    Pending p;
    p.method = "initialize";
    p.reply = std::make_shared<std::optional<json::object>>();
    p.wake = std::make_shared<asio::steady_timer>(ex_, server_.connect_timeout);
    auto reply = p.reply;
    auto wake = p.wake;
    p.message = jsonrpc::make_request(up, "initialize", std::move(params));
    p.sent = true;
    std::string send_error;
    if (!transport->send(p.message, send_error)) {
      ok = false;
      error = send_error;
    } else {
      pending_.emplace(up, std::move(p));
      co_await wake->async_wait(kUseTuple);
      pending_.erase(up);
      if (state_ == State::kClosed) co_return;
      if (!reply->has_value()) {
        ok = false;
        if (error.empty()) {
          error = transport->closed() ? "the session ended during initialize"
                                      : "no answer to initialize within " +
                                            std::to_string(server_.connect_timeout.count()) + " ms";
        }
      } else if (auto* e = (*reply)->if_contains("error")) {
        ok = false;
        error = "initialize was refused: " + json::serialize(*e);
      } else if (auto* r = (*reply)->if_contains("result"); r && r->is_object()) {
        server_init_ = r->as_object();
        std::string version = "2025-11-25";
        if (auto* v = server_init_.if_contains("protocolVersion"); v && v->is_string()) {
          version = std::string(v->as_string());
        }
        transport->send(jsonrpc::make_notification("notifications/initialized", {}), send_error);
        transport->initialized(version);
      } else {
        ok = false;
        error = "initialize answer has no result object";
      }
    }
  }
  if (state_ == State::kClosed) co_return;
  if (!ok) {
    transport->close();
    transport_.reset();
    ++failures_;
    next_attempt_ = std::chrono::steady_clock::now() +
                    std::min<std::chrono::milliseconds>(
                        std::chrono::milliseconds(250) * (1 << std::min(failures_, 7)),
                        std::chrono::seconds(30));
    spdlog::warn("server '{}': cannot start an upstream session: {}", server_.name, error);
    last_error_ = error;
    state_ = State::kIdle;
    // Everything waiting for this session fails now; later requests try again after backoff.
    auto pending = std::move(pending_);
    pending_.clear();
    by_downstream_.clear();
    for (auto& [id, p] : pending) {
      fail_pending(p, jsonrpc::kUpstreamUnavailable,
                   "upstream server '" + server_.name + "' is unavailable: " + error);
    }
    co_return;
  }
  failures_ = 0;
  if (ever_ready_) ++restarts_;
  ever_ready_ = true;
  state_ = State::kReady;
  std::vector<int64_t> ids;
  for (const auto& [id, p] : pending_) {
    if (!p.sent) ids.push_back(id);
  }
  for (int64_t id : ids) {
    if (state_ != State::kReady) break;
    transmit_pending(id);
  }
}

asio::awaitable<void> UpstreamSession::read_loop(
    [[maybe_unused]] std::shared_ptr<UpstreamSession> self,
    std::shared_ptr<UpstreamTransport> transport) {
  for (;;) {
    std::string why;
    auto in = co_await transport->receive(why);
    if (state_ == State::kClosed || transport_ != transport) co_return;
    if (!in) {
      on_lost(why);
      co_return;
    }
    handle_inbound(std::move(*in));
  }
}

std::optional<json::value> UpstreamSession::relate(
    const std::optional<json::value>& upstream_related) const {
  if (upstream_related && upstream_related->is_int64()) {
    auto it = pending_.find(upstream_related->as_int64());
    if (it != pending_.end() && !it->second.reply) return it->second.downstream_id;
  }
  // Without a transport-level relation, a message belongs to the only call in flight.
  const json::value* only = nullptr;
  for (const auto& [id, p] : pending_) {
    if (p.reply) continue;
    if (only) return std::nullopt;
    only = &p.downstream_id;
  }
  if (only) return *only;
  return std::nullopt;
}

void UpstreamSession::handle_inbound(Inbound in) {
  std::string error;
  auto msg = jsonrpc::classify(json::value(std::move(in.message)), error);
  if (!msg) return;
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("server '{}' sent {} {}", server_.name,
                  msg->kind == jsonrpc::Kind::kResponse ? "a response" : std::string(msg->method()),
                  json::serialize(msg->id()));
  }
  if (msg->kind == jsonrpc::Kind::kResponse) {
    const auto& id = msg->id();
    if (!id.is_int64()) return;
    auto it = pending_.find(id.as_int64());
    if (it == pending_.end()) return;  // cancelled, or timed out downstream
    Pending p = std::move(it->second);
    pending_.erase(it);
    if (p.reply) {
      *p.reply = std::move(msg->body);
      p.wake->cancel();
      return;
    }
    by_downstream_.erase(jsonrpc::id_key(p.downstream_id));
    msg->body["id"] = p.downstream_id;
    deliver_(std::move(msg->body), p.downstream_id);
    return;
  }
  auto related = relate(in.related);
  deliver_(std::move(msg->body), std::move(related));
}

void UpstreamSession::fail_pending(Pending& p, int code, const std::string& message) {
  if (p.reply) {
    p.wake->cancel();
    return;
  }
  deliver_(jsonrpc::make_error(p.downstream_id, code, message), p.downstream_id);
}

void UpstreamSession::on_lost(const std::string& why) {
  if (state_ == State::kClosed || state_ == State::kIdle) return;
  const bool was_ready = state_ == State::kReady;
  spdlog::warn("server '{}': upstream session ended: {}", server_.name, why);
  if (transport_) transport_->close();
  transport_.reset();
  state_ = State::kIdle;
  if (!was_ready) {
    // Wake connect(), which is waiting for initialize; it reports the failure.
    for (auto& [id, p] : pending_) {
      if (p.reply) p.wake->cancel();
    }
    return;
  }
  ++failures_;
  next_attempt_ =
      std::chrono::steady_clock::now() +
      std::min<std::chrono::milliseconds>(
          std::chrono::milliseconds(100) * (1 << std::min(failures_, 8)), std::chrono::seconds(30));
  for (auto it = pending_.begin(); it != pending_.end();) {
    Pending& p = it->second;
    if (!p.reply && is_idempotent(p.method) && !p.retried) {
      p.retried = true;  // sent again once the session is re-initialized
      p.sent = false;
      ++it;
      continue;
    }
    if (!p.reply) by_downstream_.erase(jsonrpc::id_key(p.downstream_id));
    fail_pending(p, jsonrpc::kUpstreamLost,
                 "upstream server '" + server_.name + "' ended its session while " + p.method +
                     " was in flight (" + why + "); " +
                     (p.method == "tools/call" ? "the call was not retried because it may have "
                                                 "had effects"
                                               : "not retried"));
    it = pending_.erase(it);
  }
  if (!pending_.empty()) ensure_connecting();
}

asio::awaitable<std::optional<json::value>> UpstreamSession::request(std::string method,
                                                                     json::object params,
                                                                     RequestError& error) {
  auto self = shared_from_this();
  const int64_t up = next_id_++;
  Pending p;
  p.method = method;
  p.reply = std::make_shared<std::optional<json::object>>();
  p.wake =
      std::make_shared<asio::steady_timer>(ex_, server_.connect_timeout + server_.request_timeout);
  p.message = jsonrpc::make_request(up, method, std::move(params));
  auto reply = p.reply;
  auto wake = p.wake;
  pending_.emplace(up, std::move(p));
  if (state_ == State::kReady)
    transmit_pending(up);
  else
    ensure_connecting();
  co_await wake->async_wait(kUseTuple);
  pending_.erase(up);
  if (!reply->has_value()) {
    error.code = 0;
    error.message = state_ == State::kClosed ? "session closed"
            : transport_             ? "no answer to " + method + " within " +
                               std::to_string(server_.request_timeout.count()) + " ms"
                         : last_error_.empty() ? "upstream server '" + server_.name + "' is unavailable"
                                               : last_error_;
    co_return std::nullopt;
  }
  if (auto* e = (*reply)->if_contains("error")) {
    error.message = method + " failed: " + json::serialize(*e);
    error.code = 0;
    if (auto* c = e->is_object() ? e->as_object().if_contains("code") : nullptr; c && c->is_int64()) {
      error.code = c->as_int64();
    }
    co_return std::nullopt;
  }
  co_return (*reply)->at("result");
}

void UpstreamSession::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  if (transport_) transport_->close();
  transport_.reset();
  for (auto& [id, p] : pending_) {
    if (p.reply) p.wake->cancel();
  }
  pending_.clear();
  by_downstream_.clear();
}

}  // namespace airlock::tunnel
