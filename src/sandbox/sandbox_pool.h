// SandboxPool: the session engine that every front of the self-hosted sandbox shares — the
// connected agent (connected_agent.h, sessions opened through airlockd's /mcp) and the
// environment worker (environment_worker.h, work items of Claude Managed Agents). It finds the
// toolbox, checks that a sandbox can be built at all (and keeps trying, with backoff, while it
// cannot), keeps a few sandboxes started ahead (the warm pool), hands one to each new session
// up to max_sessions, and ends them all on stop. One executor; not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "common/secrets.h"
#include "sandbox/config.h"
#include "sandbox/session.h"

namespace airlock::sandbox {

struct SandboxPoolOptions {
  SandboxConfig config;
  std::shared_ptr<secrets::SecretStore> secrets;  // loaded
  ImageRoot image;           // resolved (a registry image pulled) before the pool is made
  std::string toolbox_path;  // empty: sandbox-agent-toolbox next to the running executable
  std::string runtime_dir = "/tmp";
};

class SandboxPool {
 public:
  enum class Status { kPending, kOk, kUnavailable };

  SandboxPool(asio::any_io_executor ex, SandboxPoolOptions options);
  ~SandboxPool();

  // Finds the toolbox, makes the session factory, checks the cgroup hierarchy and removes what
  // runs of an earlier agent left. Throws std::runtime_error with an operator-facing message.
  void start();
  // Builds one sandbox before anything is offered: a missing image, an unusable cgroup or a
  // credential not loaded shows up as Status::kUnavailable with the reason; until one can be
  // built, tries again with backoff. `on_change` is called whenever the status changes.
  asio::awaitable<void> check(std::function<void()> on_change);

  // A sandbox for a new session (a warm one if any), or null with `problem` saying why: not
  // ready, stopping, every one of max_sessions in use (`busy` is then set), or one could not be
  // started. The caller calls release() when that session ends.
  std::shared_ptr<SandboxSession> acquire(std::string& problem, bool& busy);
  void release();
  // Calls in flight across every session: the pool is refilled only between them.
  void call_started() { ++calls_in_flight_; }
  void call_finished();

  Status status() const { return status_; }
  // "pending", "ok" or "unavailable", as inventories and /ready report it.
  const char* status_name() const;
  // Why sandboxes cannot be built, while Status::kUnavailable.
  const std::string& error() const { return error_; }
  size_t in_use() const { return in_use_; }
  size_t warm() const { return pool_.size(); }
  const SandboxConfig& config() const { return options_.config; }
  const std::shared_ptr<secrets::SecretStore>& secrets() const { return options_.secrets; }

  // No new sessions; the warm sandboxes end now.
  void stop();
  // Waits until every sandbox's run has ended (their processes killed, cgroups removed), or
  // `limit` passes.
  asio::awaitable<void> wait_all(std::chrono::milliseconds limit);

 private:
  void refill();
  // Refills the pool soon, when no call is in flight (sandbox_pool.cc says why).
  void schedule_refill();

  asio::any_io_executor executor_;
  SandboxPoolOptions options_;
  std::unique_ptr<SessionFactory> factory_;
  std::deque<std::shared_ptr<SandboxSession>> pool_;
  size_t warm_pool_ = 2;
  size_t in_use_ = 0;
  size_t calls_in_flight_ = 0;
  asio::steady_timer refill_timer_;
  bool refill_scheduled_ = false;
  asio::steady_timer check_timer_;  // between sandbox checks; cancelled on stop
  Status status_ = Status::kPending;
  std::string error_;
  bool stopping_ = false;
};

// sandbox-agent-toolbox next to `self` (the running executable), or empty.
std::string toolbox_beside(const std::string& self);

}  // namespace airlock::sandbox
