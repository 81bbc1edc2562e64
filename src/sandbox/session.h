// SandboxSession: one agent session's sandbox in the connected agent — its own namespaces, a
// cgroup holding the sandbox's resources (cpu, memory, pids) for the whole session, a private
// /workspace and /tmp, the egress proxy — with the toolbox (toolbox.h) running in it as its
// tool. Tool calls travel to the toolbox over a socket; the run is watched by a thread of its
// own, because run_sandboxed blocks until the run ends.
//
// SessionFactory holds what every session is built from (config, image, secrets, cgroup
// roots) and starts sessions.
//
// Threading: a session is used from the agent's io executor only; the runner thread that runs
// its sandbox touches nothing of it but posts the run's end to that executor. The io thread
// never makes a thread (session.cc says why). Lifetime: shared_ptr; close() ends
// the sandbox (the toolbox sees its channel close and exits; the kernel kills what is left).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "airlock/error.h"
#include "common/secrets.h"
#include "sandbox/cgroup.h"
#include "sandbox/config.h"
#include "sandbox/image.h"
#include "sandbox/toolbox_protocol.h"

namespace airlock::sandbox {
namespace asio = boost::asio;

class SandboxSession;

struct SessionFactoryOptions {
  SandboxConfig config;
  ImageRoot image;
  std::shared_ptr<secrets::SecretStore> secrets;
  std::string toolbox_path;  // sandbox-agent-toolbox, bound into every sandbox
  std::string runtime_dir = "/tmp";
};

class SessionFactory {
 public:
  SessionFactory(asio::any_io_executor ex, SessionFactoryOptions options);
  // Starts a sandbox now; it is ready when its toolbox says so (SandboxSession::ready()).
  // Null with `error` when it cannot be started at all (a credential not loaded).
  std::shared_ptr<SandboxSession> start(std::string& error);
  const SessionFactoryOptions& options() const { return options_; }
  const CgroupRoots& cgroups() const { return cgroups_; }
  // Waits until every sandbox's run has ended, or `limit` passes. Cancelling it stops waiting.
  asio::awaitable<void> wait_all(std::chrono::milliseconds limit);

 private:
  asio::any_io_executor executor_;
  SessionFactoryOptions options_;
  CgroupRoots cgroups_;
  std::atomic<uint64_t> next_{0};
  size_t running_ = 0;  // touched on the executor only
  std::shared_ptr<asio::steady_timer> run_ended_;  // cancelled whenever a run ends
  class Runners;
  Runners* runners_;  // threads that run sandboxes; see session.cc
};

class SandboxSession : public std::enable_shared_from_this<SandboxSession> {
 public:
  using Progress = std::function<void(uint64_t elapsed_ms)>;

  SandboxSession(asio::any_io_executor ex, std::string id);
  ~SandboxSession();

  const std::string& id() const { return id_; }
  // Waits until the toolbox is up, or the sandbox failed to start — or did not start within
  // kStartDeadline, which ends it. Cancelling it leaves the session intact.
  asio::awaitable<bool> ready();
  // Sends `request` (given an id here unless it has one from allocate_id()) and waits for the
  // final reply; progress replies
  // go to `progress`. An error when the sandbox ended first (ended_reason() says why).
  // Cancelling the wait sends the toolbox a cancel for the request.
  asio::awaitable<Result<toolbox::Reply>> call(toolbox::Request request, Progress progress);
  // Asks the toolbox to stop the call `request_id` (its processes are killed; the reply
  // reports it).
  void cancel(uint64_t request_id);
  // Ends the sandbox. Idempotent.
  void close();

  bool ended() const { return ended_; }
  // Why the sandbox ended ("memory limit of 64Mi exceeded: …"), once it has.
  const std::string& ended_reason() const { return ended_reason_; }
  // An id for the next call(), known before the call is sent (so that it can be cancelled).
  uint64_t allocate_id() { return ++next_request_; }

 private:
  friend class SessionFactory;
  struct Pending {
    explicit Pending(asio::any_io_executor ex) : wake(ex) {}
    asio::steady_timer wake;
    std::optional<toolbox::Reply> reply;
    Progress progress;
  };
  void attach(int channel_fd);
  asio::awaitable<void> read_loop(std::shared_ptr<SandboxSession> self);
  asio::awaitable<void> write_loop(std::shared_ptr<SandboxSession> self);
  void send(std::string frame);
  void on_run_ended(std::string reason);

  asio::any_io_executor executor_;
  std::string id_;
  asio::local::stream_protocol::socket channel_;
  std::deque<std::string> outbox_;
  bool writing_ = false;
  bool is_ready_ = false;
  bool ended_ = false;
  std::string ended_reason_;
  asio::steady_timer ready_signal_;  // cancelled when the toolbox is up or the run ends
  std::chrono::steady_clock::time_point created_;
  static constexpr std::chrono::seconds kStartDeadline{30};
  std::map<uint64_t, std::shared_ptr<Pending>> pending_;
  uint64_t next_request_ = 0;
};

}  // namespace airlock::sandbox
