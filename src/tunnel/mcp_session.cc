#include "tunnel/mcp_session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include "common/log.h"

namespace airlock::tunnel {
namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;
}  // namespace

UpstreamSession::UpstreamSession(asio::any_io_executor ex, const UpstreamServer& server,
                                 json::object client, Deliver deliver, Injection injection,
                                 std::shared_ptr<ChildProcesses> children)
    : ex_(ex),
      server_(server),
      injection_(std::move(injection)),
      children_(std::move(children)),
      deliver_(std::move(deliver)),
      core_(server.name, std::move(client), SessionCore::kRestartPolicy, std::random_device{}(),
            session::Mode{
                .discover = server.url.starts_with("http://") || server.url.starts_with("https://"),
                .listen = injection_.inventory}) {}

UpstreamSession::~UpstreamSession() {
  if (transport_) transport_->close();
}

void UpstreamSession::send(json::object message) {
  apply(core_.send(std::move(message), session::Clock::now()));
}

void UpstreamSession::apply(session::Effects effects) {
  for (auto& effect : effects) {
    std::visit(
        Overloaded{
            [&](session::Transmit& t) { transmit(t.message); },
            [&](session::Deliver& d) { deliver_(std::move(d.message), std::move(d.related)); },
            [&](session::Start& s) {
              asio::co_spawn(ex_, start(shared_from_this(), s), [name = server_.name](auto e) {
                log_failure(e, "starting a session with server '" + name + "'");
              });
            },
            [&](session::Ready& r) {
              if (init_deadline_) init_deadline_->cancel();
              if (transport_) transport_->initialized(r.protocol_version);
            },
            [&](session::Stop& s) {
              if (init_deadline_) init_deadline_->cancel();
              if (s.starting) {
                spdlog::warn("server '{}': cannot start an upstream session: {}", server_.name,
                             s.why);
              } else if (s.why != "session closed") {
                spdlog::warn("server '{}': upstream session ended: {}", server_.name, s.why);
              }
              close_transport();
            },
            [&](session::Abandon& a) {
              if (transport_) transport_->abandon(json::value(a.id));
            },
            [&](session::OwnReply& o) {
              auto it = waiters_.find(o.id);
              if (it == waiters_.end()) return;
              *it->second.reply = std::move(o.reply);
              *it->second.error = std::move(o.error);
              it->second.wake->cancel();
              waiters_.erase(it);
            },
        },
        effect);
  }
}

void UpstreamSession::transmit(const json::object& message) {
  // No transport: the session was lost while these effects were carried out, and the core has
  // already failed or queued again what it had sent.
  if (!transport_) return;
  std::string error;
  if (!transport_->send(message, error)) {
    apply(core_.on_lost(error.empty() ? "session closed" : error, session::Clock::now()));
  }
}

void UpstreamSession::close_transport() {
  if (transport_) transport_->close();
  transport_.reset();
}

asio::awaitable<void> UpstreamSession::start(std::shared_ptr<UpstreamSession> self,
                                             session::Start s) {
  if (s.after.count() > 0) {
    asio::steady_timer t(ex_, s.after);
    co_await t.async_wait(kUseTuple);
  }
  if (core_.state() != SessionCore::State::kStarting || core_.attempt() != s.attempt) co_return;
  auto transport =
      std::shared_ptr<UpstreamTransport>(make_transport(ex_, server_, injection_, children_));
  transport_ = transport;
  std::string error;
  const bool open = co_await transport->open(error);  // bounded by connect_timeout
  if (core_.state() != SessionCore::State::kStarting || core_.attempt() != s.attempt) {
    transport->close();
    co_return;
  }
  if (!open) {
    apply(core_.on_start_failed(s.attempt, error, session::Clock::now()));
    co_return;
  }
  asio::co_spawn(ex_, read_loop(self, transport), [name = server_.name](auto e) {
    log_failure(e, "reading from server '" + name + "'");
  });
  // initialize, bounded by connect_timeout.
  auto deadline = std::make_shared<asio::steady_timer>(ex_, server_.connect_timeout);
  init_deadline_ = deadline;
  apply(core_.on_transport_open(s.attempt));
  auto [ec] = co_await deadline->async_wait(kUseTuple);
  if (ec) co_return;  // answered, or the start ended otherwise
  apply(core_.on_start_failed(s.attempt,
                              transport->closed()
                                  ? "the session ended during initialize"
                                  : "no answer to initialize within " +
                                        std::to_string(server_.connect_timeout.count()) + " ms",
                              session::Clock::now()));
}

asio::awaitable<void> UpstreamSession::read_loop(
    [[maybe_unused]] std::shared_ptr<UpstreamSession> self,
    std::shared_ptr<UpstreamTransport> transport) {
  for (;;) {
    std::string why;
    auto in = co_await transport->receive(why);
    if (core_.state() == SessionCore::State::kClosed || transport_ != transport) co_return;
    if (!in) {
      apply(core_.on_lost(why, session::Clock::now()));
      co_return;
    }
    if (spdlog::should_log(spdlog::level::debug)) {
      const auto* id = in->message.if_contains("id");
      const auto* method = in->message.if_contains("method");
      spdlog::debug("server '{}' sent {} {}", server_.name,
                    method ? json::serialize(*method) : std::string("a response"),
                    id ? json::serialize(*id) : std::string());
    }
    apply(core_.on_upstream(std::move(in->message), std::move(in->related), session::Clock::now()));
  }
}

asio::awaitable<std::optional<json::value>> UpstreamSession::request(std::string method,
                                                                     json::object params,
                                                                     RequestError& error) {
  auto self = shared_from_this();
  Waiter w{
      std::make_shared<std::optional<json::object>>(), std::make_shared<std::string>(),
      std::make_shared<asio::steady_timer>(ex_, server_.connect_timeout + server_.request_timeout)};
  auto reply = w.reply;
  auto failure = w.error;
  auto wake = w.wake;
  session::Effects effects;
  const int64_t id = core_.own_request(method, std::move(params), session::Clock::now(), effects);
  waiters_.emplace(id, std::move(w));
  apply(std::move(effects));
  // Completed already (a closed session fails it at once), or wait for OwnReply's wake-up.
  if (waiters_.count(id)) co_await wake->async_wait(kUseTuple);
  if (waiters_.erase(id)) {  // not answered: the deadline passed, or the wait was cancelled
    core_.own_abandoned(id);
    if (core_.state() == SessionCore::State::kClosed) {
      *failure = "session closed";
    } else if (transport_) {
      *failure = "no answer to " + method + " within " +
                 std::to_string(server_.request_timeout.count()) + " ms";
    } else {
      *failure = core_.last_error();
    }
  }
  if (!reply->has_value()) {
    error.code = 0;
    error.message =
        failure->empty() ? "upstream server '" + server_.name + "' is unavailable" : *failure;
    co_return std::nullopt;
  }
  if (auto* e = (*reply)->if_contains("error")) {
    error.message = method + " failed: " + json::serialize(*e);
    error.code = 0;
    if (auto* c = e->is_object() ? e->as_object().if_contains("code") : nullptr;
        c && c->is_int64()) {
      error.code = c->as_int64();
    }
    co_return std::nullopt;
  }
  if (auto* r = (*reply)->if_contains("result")) co_return *r;
  error.code = 0;
  error.message = method + " answer has neither result nor error";
  co_return std::nullopt;
}

void UpstreamSession::close() { apply(core_.close()); }

}  // namespace airlock::tunnel
