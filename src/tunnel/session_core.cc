#include "tunnel/session_core.h"

#include <boost/json/serialize.hpp>

#include "common/jsonrpc.h"
#include "common/mcp_revision.h"
#include "tunnel/stateless_upstream.h"

namespace airlock::tunnel {
using namespace session;

bool is_idempotent(std::string_view m) {
  return m == "ping" || m == "tools/list" || m == "resources/list" || m == "resources/read" ||
         m == "resources/templates/list" || m == "prompts/list" || m == "prompts/get" ||
         m == "completion/complete" || m == "logging/setLevel" || m == "resources/subscribe" ||
         m == "resources/unsubscribe";
}

SessionCore::SessionCore(std::string server, json::object client, BackoffPolicy restarts,
                         uint64_t seed, session::Mode mode)
    : server_(std::move(server)),
      client_(std::move(client)),
      backoff_(restarts, seed),
      mode_(mode),
      probe_(mode.discover) {
  if (!client_.contains("protocolVersion")) client_["protocolVersion"] = "2025-11-25";
  if (!client_.contains("capabilities")) client_["capabilities"] = json::object{};
  if (!client_.contains("clientInfo")) {
    client_["clientInfo"] = json::object{{"name", "mcp-tunnel"}, {"version", AIRLOCK_VERSION}};
  }
}

Effects SessionCore::send(json::object message, Clock::time_point now) {
  Effects out;
  if (state_ == State::kClosed) return out;
  std::string error;
  auto msg = jsonrpc::classify(json::value(std::move(message)), error);
  if (!msg) return out;
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
      if (state_ == State::kReady) {
        transmit(up, out);
      } else {
        ensure_started(now, out);
      }
      break;
    }
    case jsonrpc::Kind::kNotification:
      if (stateless_) {
        // 2026-07-28 has no client notifications: a cancellation closes the request's stream.
        if (msg->method() != "notifications/cancelled") break;
        auto* params = msg->params();
        const json::value* rid = params ? params->if_contains("requestId") : nullptr;
        auto it = rid ? by_downstream_.find(jsonrpc::id_key(*rid)) : by_downstream_.end();
        if (it == by_downstream_.end()) break;
        const int64_t up = it->second;
        by_downstream_.erase(it);
        auto p = pending_.find(up);
        const bool sent = p != pending_.end() && p->second.sent;
        if (p != pending_.end()) pending_.erase(p);
        forget_inputs(up);
        if (sent) out.push_back(Abandon{up});  // one not sent yet is simply forgotten
        break;
      }
      if (msg->method() == "notifications/cancelled") {
        auto* params = msg->params();
        const json::value* rid = params ? params->if_contains("requestId") : nullptr;
        if (!rid) break;
        auto it = by_downstream_.find(jsonrpc::id_key(*rid));
        if (it == by_downstream_.end()) break;  // already answered
        const int64_t up = it->second;
        by_downstream_.erase(it);
        pending_.erase(up);
        msg->body["params"].as_object()["requestId"] = up;
      }
      // Notifications before the session exists concern nothing the server knows of.
      if (state_ == State::kReady) out.push_back(Transmit{std::move(msg->body)});
      break;
    case jsonrpc::Kind::kResponse:
      if (stateless_) {
        input_answered(std::move(msg->body), out);
        break;
      }
      // An answer to a server request: the server's own id travels unchanged.
      if (state_ == State::kReady) out.push_back(Transmit{std::move(msg->body)});
      break;
  }
  return out;
}

int64_t SessionCore::own_request(const std::string& method, json::object params,
                                 Clock::time_point now, Effects& out) {
  const int64_t up = next_id_++;
  Pending p;
  p.method = method;
  p.own = true;
  p.message = jsonrpc::make_request(up, method, std::move(params));
  pending_.emplace(up, std::move(p));
  if (state_ == State::kClosed) {
    out.push_back(OwnReply{up, std::nullopt, "session closed"});
    pending_.erase(up);
  } else if (state_ == State::kReady) {
    transmit(up, out);
  } else {
    ensure_started(now, out);
  }
  return up;
}

void SessionCore::own_abandoned(int64_t id) {
  auto it = pending_.find(id);
  if (it != pending_.end() && it->second.own) pending_.erase(it);
}

void SessionCore::ensure_started(Clock::time_point now, Effects& out) {
  if (state_ != State::kIdle) return;
  state_ = State::kStarting;
  ++attempt_;
  const auto wait = not_before_ > now
                        ? std::chrono::duration_cast<std::chrono::milliseconds>(not_before_ - now)
                        : std::chrono::milliseconds(0);
  out.push_back(Start{wait, attempt_});
}

Effects SessionCore::on_transport_open(uint64_t attempt) {
  Effects out;
  if (state_ != State::kStarting || attempt != attempt_ || init_id_ != 0 || discover_id_ != 0) {
    return out;
  }
  if (probe_) {
    discover_id_ = next_id_++;
    out.push_back(Transmit{stateless::discover_request(discover_id_, client_)});
    return out;
  }
  init_id_ = next_id_++;
  out.push_back(Transmit{jsonrpc::make_request(init_id_, "initialize", client_)});
  return out;
}

Effects SessionCore::on_start_failed(uint64_t attempt, const std::string& error,
                                     Clock::time_point now) {
  Effects out;
  if (state_ != State::kStarting || attempt != attempt_) return out;
  state_ = State::kIdle;
  init_id_ = 0;
  discover_id_ = 0;
  probe_ = mode_.discover;  // whatever answered before, ask again next time
  last_error_ = error;
  not_before_ = now + backoff_.next_delay();
  out.push_back(Stop{error, true});
  // Everything waiting for this session fails now; later requests try again after backoff.
  fail_all("upstream server '" + server_ + "' is unavailable: " + error, error, out);
  return out;
}

void SessionCore::initialized(const json::object& answer, Clock::time_point now, Effects& out) {
  const uint64_t attempt = attempt_;
  if (auto* e = answer.if_contains("error")) {
    out = on_start_failed(attempt, "initialize was refused: " + json::serialize(*e), now);
    return;
  }
  auto* r = answer.if_contains("result");
  if (!r || !r->is_object()) {
    out = on_start_failed(attempt, "initialize answer has no result object", now);
    return;
  }
  server_init_ = r->as_object();
  std::string version = "2025-11-25";
  if (auto* v = server_init_.if_contains("protocolVersion"); v && v->is_string()) {
    version = std::string(v->as_string());
  }
  init_id_ = 0;
  out.push_back(Transmit{jsonrpc::make_notification("notifications/initialized", {})});
  ready(version, now, out);
}

void SessionCore::discovered(const json::object& answer, Clock::time_point now, Effects& out) {
  discover_id_ = 0;
  if (auto init = stateless::discovered(answer)) {
    stateless_ = true;
    server_init_ = std::move(*init);
    if (meta_.empty()) meta_ = stateless::envelope_meta(client_);
    ready(std::string(mcp::kStatelessRevision), now, out);
    if (!mode_.listen) return;
    const json::value& caps = server_init_.at("capabilities");
    if (auto listen = stateless::listen_request(next_id_, caps.as_object(), client_)) {
      listen_id_ = next_id_++;
      out.push_back(Transmit{std::move(*listen)});
    }
    return;
  }
  // A 2025 server (it refused the probe, or does not list 2026-07-28): a session, and no probe
  // before the next one unless a start fails.
  stateless_ = false;
  probe_ = false;
  init_id_ = next_id_++;
  out.push_back(Transmit{jsonrpc::make_request(init_id_, "initialize", client_)});
}

void SessionCore::ready(const std::string& version, Clock::time_point now, Effects& out) {
  state_ = State::kReady;
  if (ever_ready_) ++restarts_;
  ever_ready_ = true;
  backoff_.on_connected(now);
  out.push_back(Ready{version});
  transmit_unsent(out);
}

void SessionCore::transmit_unsent(Effects& out) {
  std::vector<int64_t> unsent;
  for (auto& [id, p] : pending_) {
    if (!p.sent) unsent.push_back(id);
  }
  for (const int64_t id : unsent) transmit(id, out);
}

bool SessionCore::transmit(int64_t id, Effects& out) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return false;
  Pending& p = it->second;
  p.sent = true;
  if (!stateless_) {
    out.push_back(Transmit{p.message});
    return true;
  }
  if (auto answer = stateless::answer_locally(p.message, log_level_, server_)) {
    if (p.own) {
      out.push_back(OwnReply{id, std::move(*answer), {}});
    } else {
      by_downstream_.erase(jsonrpc::id_key(p.downstream_id));
      (*answer)["id"] = p.downstream_id;
      out.push_back(Deliver{std::move(*answer), p.downstream_id});
    }
    pending_.erase(it);
    return false;
  }
  out.push_back(Transmit{stateless::envelope(p.message, meta_, log_level_)});
  return true;
}

bool SessionCore::ask_for_input(int64_t id, Pending& p, const json::object& answer, Effects& out) {
  std::string error;
  auto round = stateless::input_required(answer, error);
  if (!round && error.empty()) return false;
  if (round && p.own) error = "it asked for input, which mcp-tunnel's own requests do not give";
  if (!error.empty()) {
    const std::string message = "server '" + server_ + "' answered " + p.method + ": " + error;
    if (p.own) {
      out.push_back(OwnReply{id, std::nullopt, message});
    } else {
      by_downstream_.erase(jsonrpc::id_key(p.downstream_id));
      fail(p, jsonrpc::kInternalError, message, out);
    }
    pending_.erase(id);
    return true;
  }
  // Each input request goes to the agent as the request a 2025 server would have sent, related
  // to its call; the call waits for all of them.
  p.answers = json::object{};
  p.awaiting = round->requests.size();
  p.request_state = std::move(round->state);
  for (auto& [key, request] : round->requests) {
    const json::value input_id = json::string("input-" + std::to_string(next_input_++));
    std::string method(request.at("method").as_string());
    inputs_[jsonrpc::id_key(input_id)] = Input{id, key, method};
    out.push_back(Deliver{
        jsonrpc::make_request(input_id, method, std::move(request.at("params").as_object())),
        p.downstream_id});
  }
  return true;
}

void SessionCore::input_answered(json::object answer, Effects& out) {
  auto it = inputs_.find(jsonrpc::id_key(answer.at("id")));
  if (it == inputs_.end()) return;  // the call ended meanwhile
  const Input input = std::move(it->second);
  inputs_.erase(it);
  auto p = pending_.find(input.upstream);
  if (p == pending_.end()) return;
  if (const json::value* error = answer.if_contains("error")) {
    forget_inputs(input.upstream);
    by_downstream_.erase(jsonrpc::id_key(p->second.downstream_id));
    fail(p->second, jsonrpc::kInternalError,
         "the server's " + input.method +
             " request was answered with an error: " + json::serialize(*error),
         out);
    pending_.erase(p);
    return;
  }
  const json::value* result = answer.if_contains("result");
  p->second.answers[input.key] = result ? *result : json::object{};
  if (--p->second.awaiting > 0) return;
  json::object again =
      stateless::retry(p->second.message, std::move(p->second.answers), p->second.request_state);
  p->second.answers = json::object{};
  p->second.request_state.reset();
  out.push_back(Transmit{stateless::envelope(std::move(again), meta_, log_level_)});
}

void SessionCore::forget_inputs(int64_t upstream) {
  std::erase_if(inputs_, [&](const auto& entry) { return entry.second.upstream == upstream; });
}

std::optional<json::value> SessionCore::relate(
    const std::optional<json::value>& upstream_related) const {
  if (upstream_related && upstream_related->is_int64()) {
    auto it = pending_.find(upstream_related->as_int64());
    if (it != pending_.end() && !it->second.own) return it->second.downstream_id;
  }
  // Without a transport-level relation, a message belongs to the only call in flight.
  const json::value* only = nullptr;
  for (const auto& [id, p] : pending_) {
    if (p.own) continue;
    if (only) return std::nullopt;
    only = &p.downstream_id;
  }
  if (only) return *only;
  return std::nullopt;
}

Effects SessionCore::on_upstream(json::object message, std::optional<json::value> related,
                                 Clock::time_point now) {
  Effects out;
  if (state_ == State::kClosed || state_ == State::kIdle) return out;
  std::string error;
  auto msg = jsonrpc::classify(json::value(std::move(message)), error);
  if (!msg) return out;
  if (msg->kind == jsonrpc::Kind::kResponse) {
    const auto& id = msg->id();
    if (!id.is_int64()) return out;
    if (state_ == State::kStarting) {
      if (init_id_ != 0 && id.as_int64() == init_id_) initialized(msg->body, now, out);
      if (discover_id_ != 0 && id.as_int64() == discover_id_) discovered(msg->body, now, out);
      return out;
    }
    if (listen_id_ != 0 && id.as_int64() == listen_id_) {
      listen_id_ = 0;  // the server ended the listen; list changes reach the next refresh
      return out;
    }
    auto it = pending_.find(id.as_int64());
    if (it == pending_.end()) return out;  // cancelled, or timed out downstream
    if (stateless_ && ask_for_input(id.as_int64(), it->second, msg->body, out)) return out;
    Pending p = std::move(it->second);
    pending_.erase(it);
    if (p.own) {
      out.push_back(OwnReply{id.as_int64(), std::move(msg->body), {}});
      return out;
    }
    by_downstream_.erase(jsonrpc::id_key(p.downstream_id));
    msg->body["id"] = p.downstream_id;
    out.push_back(Deliver{std::move(msg->body), p.downstream_id});
    return out;
  }
  if (listen_id_ != 0 && related && related->is_int64() && related->as_int64() == listen_id_) {
    // A list change: it concerns the server, not a call.
    if (!stateless::is_listen_bookkeeping(msg->body)) {
      out.push_back(Deliver{std::move(msg->body), std::nullopt});
    }
    return out;
  }
  auto rel = relate(related);
  out.push_back(Deliver{std::move(msg->body), std::move(rel)});
  return out;
}

void SessionCore::fail(Pending& p, int code, const std::string& message, Effects& out) {
  if (p.own) return;  // reported by the caller, with its id
  out.push_back(Deliver{jsonrpc::make_error(p.downstream_id, code, message), p.downstream_id});
}

void SessionCore::fail_all(const std::string& message, const std::string& own_message,
                           Effects& out) {
  auto pending = std::move(pending_);
  pending_.clear();
  by_downstream_.clear();
  inputs_.clear();
  for (auto& [id, p] : pending) {
    if (p.own) {
      out.push_back(OwnReply{id, std::nullopt, own_message});
    } else {
      fail(p, jsonrpc::kUpstreamUnavailable, message, out);
    }
  }
}

Effects SessionCore::on_lost(const std::string& why, Clock::time_point now) {
  Effects out;
  if (state_ == State::kClosed || state_ == State::kIdle) return out;
  if (state_ == State::kStarting) return on_start_failed(attempt_, why, now);
  state_ = State::kIdle;
  listen_id_ = 0;
  inputs_.clear();
  out.push_back(Stop{why, false});
  backoff_.on_disconnected(now);
  not_before_ = now + backoff_.next_delay();
  for (auto it = pending_.begin(); it != pending_.end();) {
    Pending& p = it->second;
    if (!p.own && is_idempotent(p.method) && !p.retried) {
      p.retried = true;  // sent again once the session is re-initialized
      p.sent = false;
      ++it;
      continue;
    }
    const std::string message =
        "upstream server '" + server_ + "' ended its session while " + p.method +
        " was in flight (" + why + "); " +
        (p.method == "tools/call" ? "the call was not retried because it may have had effects"
                                  : "not retried");
    if (p.own) {
      out.push_back(OwnReply{it->first, std::nullopt, message});
    } else {
      by_downstream_.erase(jsonrpc::id_key(p.downstream_id));
      fail(p, jsonrpc::kUpstreamLost, message, out);
    }
    it = pending_.erase(it);
  }
  if (!pending_.empty()) ensure_started(now, out);
  return out;
}

Effects SessionCore::close() {
  Effects out;
  if (state_ == State::kClosed) return out;
  state_ = State::kClosed;
  out.push_back(Stop{"session closed", false});
  for (auto& [id, p] : pending_) {
    if (p.own) out.push_back(OwnReply{id, std::nullopt, "session closed"});
  }
  pending_.clear();
  by_downstream_.clear();
  inputs_.clear();
  return out;
}

}  // namespace airlock::tunnel
