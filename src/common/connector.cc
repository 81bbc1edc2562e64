#include "common/connector.h"

#include <boost/asio/post.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

namespace airlock {
using namespace asio::experimental::awaitable_operators;

namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
}

Connector::Connector(asio::any_io_executor ex, ConnectorOptions options,
                     Link::StreamHandler handler)
    : executor_(ex),
      options_(std::move(options)),
      handler_(std::move(handler)),
      stop_signal_(ex, asio::steady_timer::time_point::max()) {}

asio::awaitable<void> Connector::sleep(std::chrono::milliseconds d) {
  if (stopping_) co_return;
  asio::steady_timer t(executor_, d);
  co_await (t.async_wait(kUseTuple) || stop_signal_.async_wait(kUseTuple));
}

asio::awaitable<void> Connector::run() {
  if (options_.dial.endpoint.tls) tls_context_ = tls::make_client_context(options_.dial.tls);
  if (options_.dial.tls.insecure_skip_verify) {
    spdlog::warn("TLS verification of airlockd is DISABLED (--insecure-skip-tls-verify): anyone "
                 "on the path can impersonate airlockd and take this connector's token");
  }
  for (int i = 0; i < options_.ha_connections; ++i) {
    ++loops_running_;
    asio::co_spawn(executor_, connection_loop(i), [this](std::exception_ptr e) {
      --loops_running_;
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("connection loop failed: {}", ex.what());
      }
    });
  }
  while (loops_running_ > 0) {
    asio::steady_timer t(executor_, std::chrono::milliseconds(50));
    co_await (t.async_wait(kUseTuple) || stop_signal_.async_wait(kUseTuple));
    if (stopping_) {
      // Let stop() drain; wait for the loops to notice.
      asio::steady_timer poll(executor_, std::chrono::milliseconds(20));
      co_await poll.async_wait(kUseTuple);
    }
  }
}

asio::awaitable<void> Connector::connection_loop(int index) {
  Backoff backoff(options_.backoff);
  std::string last_logged;
  const std::string kind(proto::to_string(options_.hello.kind));
  while (!stopping_) {
    auto attempt = co_await (dial(options_.dial, tls_context_) || stop_signal_.async_wait(kUseTuple));
    if (attempt.index() == 1) break;
    DialResult r = std::move(std::get<0>(attempt));
    std::shared_ptr<Link> link;
    std::string error = r.error;
    if (r.transport) {
      LinkOptions lo;
      lo.role = proto::Role::kConnector;
      lo.limits = options_.hello.limits;
      lo.redaction = options_.redaction;
      lo.on_redacted = options_.on_redacted;
      link = std::make_shared<Link>(std::move(r.transport), lo);
      auto accepted = co_await link->connect_handshake(options_.hello, error);
      if (accepted) {
        stats_.resource_name = accepted->name;
      } else {
        error = (accepted.error() == Errc::kProtocolVersionMismatch ? "" : "airlockd refused ") +
                error;
        link.reset();
      }
    }
    if (!link) {
      ++stats_.dial_failures;
      stats_.last_error = error;
      const auto delay = backoff.next_delay();
      if (error != last_logged) {
        spdlog::error("link {}: {} (retrying with backoff; next attempt in {} ms)", index, error,
                      delay.count());
        last_logged = error;
      } else {
        spdlog::debug("link {}: {} (attempt {})", index, error, backoff.attempts());
      }
      co_await sleep(delay);
      continue;
    }
    last_logged.clear();
    ++stats_.connects;
    ++stats_.active_links;
    stats_.last_error.clear();
    links_.insert(link);
    backoff.on_connected(std::chrono::steady_clock::now());
    spdlog::info("link {}: connected to {} as {} '{}'", index, link->remote_address(), kind,
                 stats_.resource_name);
    if (options_.on_link_up) {
      // Runs once run() below has started the link's loops.
      asio::post(executor_, [cb = options_.on_link_up, link] { cb(link); });
    }
    const std::string reason = co_await link->run(handler_);
    links_.erase(link);
    --stats_.active_links;
    backoff.on_disconnected(std::chrono::steady_clock::now());
    if (stopping_) break;
    auto goaway = link->peer_goaway();
    if (goaway && goaway->first == proto::ResetCode::kRevoked) {
      stats_.last_error = "airlockd revoked this connector's token";
      spdlog::error("link {}: airlockd revoked this connector's token; mint a new one with "
                    "'airlock {} create' and restart with it",
                    index, kind);
    } else {
      spdlog::warn("link {}: closed: {}; reconnecting", index, reason);
    }
    co_await sleep(backoff.next_delay());
  }
}

asio::awaitable<void> Connector::stop() {
  if (stopping_) co_return;
  stopping_ = true;
  stop_signal_.cancel();
  size_t streams = 0;
  for (const auto& l : links_) streams += l->stream_count();
  spdlog::info("stopping: sending goaway on {} link(s), draining {} stream(s) for up to {} ms",
               links_.size(), streams, options_.drain_timeout.count());
  for (const auto& link : std::set<std::shared_ptr<Link>>(links_)) {
    asio::co_spawn(executor_, link->drain(options_.drain_timeout, "connector is shutting down"),
                   asio::detached);
  }
  const auto deadline =
      std::chrono::steady_clock::now() + options_.drain_timeout + std::chrono::seconds(6);
  asio::steady_timer poll(executor_);
  while ((!links_.empty() || loops_running_ > 0) && std::chrono::steady_clock::now() < deadline) {
    poll.expires_after(std::chrono::milliseconds(20));
    co_await poll.async_wait(kUseTuple);
  }
}

}  // namespace airlock
