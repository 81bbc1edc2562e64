#include "sandbox/session.h"

#include <pthread.h>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "common/log.h"
#include "sandbox/http_credentials.h"
#include "sandbox/sandbox.h"
#include "sandbox/tool_env.h"

namespace airlock::sandbox {
namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// A runner thread needs little stack: run_sandboxed's largest frame is its 64 KiB read buffer.
// A small stack keeps an idle session's memory down.
constexpr size_t kRunnerStack = 256 * 1024;

std::string describe_end(const RunResult& r) {
  if (r.setup_failed) return "the sandbox could not be set up: " + r.error;
  if (!r.limit.empty() && r.limit != "output") return r.error;
  if (r.exit_code == 0) return "the sandbox ended";
  return "the sandbox's toolbox exited with status " + std::to_string(r.exit_code) +
         (r.error.empty() ? "" : ": " + r.error);
}

}  // namespace

// Threads that run sandboxes (each blocks in run_sandboxed for a session's life). Under cgroup
// v1 every clone on the host waits while any cgroup migration waits for an RCU grace period
// (10 ms and more), and making a thread is a clone: so the agent's io thread never makes one.
// The pool starts with a few threads; a runner that takes the last idle slot makes the next
// thread itself, before it runs its sandbox.
class SessionFactory::Runners {
 public:
  explicit Runners(size_t initial) {
    for (size_t i = 0; i < initial; ++i) spawn();
  }
  void post(std::function<void()> job) {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
    ready_.notify_one();
  }

 private:
  bool spawn() {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kRunnerStack);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    const int rc = pthread_create(
        &thread, &attr,
        [](void* self) -> void* {
          static_cast<Runners*>(self)->loop();
          return nullptr;
        },
        this);
    pthread_attr_destroy(&attr);
    if (rc != 0) return false;
    std::lock_guard lock(mutex_);
    ++idle_;
    return true;
  }
  [[noreturn]] void loop() {
    for (;;) {
      std::function<void()> job;
      bool grow = false;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return !jobs_.empty(); });
        job = std::move(jobs_.front());
        jobs_.pop_front();
        grow = --idle_ == 0;
      }
      if (grow && !spawn()) spdlog::error("cannot start a thread for sandbox sessions");
      try {
        job();
      } catch (const std::exception& e) {
        spdlog::error("a sandbox runner failed: {}", e.what());
      }
      std::lock_guard lock(mutex_);
      ++idle_;
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  size_t idle_ = 0;
};

SessionFactory::SessionFactory(asio::any_io_executor ex, SessionFactoryOptions options)
    : executor_(ex),
      options_(std::move(options)),
      cgroups_(CgroupRoots::detect()),
      run_ended_(std::make_shared<asio::steady_timer>(ex)),
      // Runners are never freed: a thread may still be returning from its last sandbox when
      // the factory goes (the process is exiting then).
      runners_(new Runners(options_.config.warm_pool + 2)) {}

asio::awaitable<void> SessionFactory::wait_all(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (running_ > 0 && std::chrono::steady_clock::now() < deadline) {
    run_ended_->expires_at(deadline);
    co_await run_ended_->async_wait(kUseTuple);
  }
}

std::shared_ptr<SandboxSession> SessionFactory::start(std::string& error) {
  const auto& config = options_.config;
  const uint64_t n = next_++;
  const std::string run_id =
      "airlock-" + config.name + "-" + std::to_string(::getpid()) + "-s" + std::to_string(n);
  auto spec = std::make_shared<RunSpec>();
  spec->name = config.name;
  spec->root.host = options_.image.host;
  spec->root.image_dir = options_.image.dir;
  spec->root.tmp_size = config.resources.tmp_size;
  spec->root.workspace_size = config.resources.tmp_size;
  spec->root.toolbox = options_.toolbox_path;
  spec->limits = config.resources;
  // The session lives as long as the agent session; each call has its own time limit.
  spec->limits.wall_time = std::chrono::hours(24 * 365);
  spec->argv = {"/.airlock-toolbox"};
  spec->run_id = run_id;
  spec->runtime_dir = options_.runtime_dir;
  auto set = options_.secrets ? options_.secrets->current() : nullptr;
  std::unique_ptr<EgressProxy> made_proxy;
  if (!prepare_sandbox(config, set, make_credential_injector, *spec, made_proxy, error)) {
    return nullptr;
  }
  std::shared_ptr<EgressProxy> proxy = std::move(made_proxy);
  // Only the toolbox's own diagnostics arrive here; the tool output travels on the channel.
  spec->output = [run_id](int, std::string_view bytes) {
    spdlog::debug("session {}: toolbox: {}", run_id, bytes);
  };
  spec->redaction = set ? set->patterns : nullptr;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    error = std::string("socketpair: ") + std::strerror(errno);
    wipe(spec->env);
    return nullptr;
  }
  auto session = std::make_shared<SandboxSession>(executor_, run_id);
  session->attach(fds[0]);
  spec->stdin_fd = fds[1];
  if (proxy) {
    spec->proxy_port = kProxyPort;
    spec->on_proxy_socket = [proxy](int fd) { proxy->start(fd); };
  }
  // The agent's copy of the toolbox's end is closed as soon as the child has its own, so that
  // the toolbox's exit closes the channel.
  auto toolbox_end = std::make_shared<int>(fds[1]);
  spec->during_setup = [toolbox_end] {
    if (*toolbox_end >= 0) ::close(*toolbox_end), *toolbox_end = -1;
  };
  std::weak_ptr<SandboxSession> weak = session;
  auto ex = executor_;
  const CgroupRoots* roots = &cgroups_;
  ++running_;
  // Told of each run's end on the executor; a weak pointer, since the factory may be gone.
  auto ended = [this, signal = std::weak_ptr<asio::steady_timer>(run_ended_)] {
    if (signal.expired()) return;
    --running_;
    signal.lock()->cancel();
  };
  runners_->post([spec, proxy, toolbox_end, weak, ex, roots, run_id, ended] {
    RunResult result = run_sandboxed(*spec, *roots);
    if (*toolbox_end >= 0) ::close(*toolbox_end), *toolbox_end = -1;
    if (proxy) proxy->stop();
    wipe(spec->env);
    std::string reason = describe_end(result);
    if (result.setup_failed || !result.limit.empty()) {
      spdlog::warn("session {}: {}", run_id, reason);
    } else {
      spdlog::debug("session {}: {}", run_id, reason);
    }
    asio::post(ex, [weak, ended, reason = std::move(reason)]() mutable {
      ended();
      if (auto s = weak.lock()) s->on_run_ended(std::move(reason));
    });
  });
  return session;
}

SandboxSession::SandboxSession(asio::any_io_executor ex, std::string id)
    : executor_(ex),
      id_(std::move(id)),
      channel_(ex),
      ready_signal_(ex),
      created_(std::chrono::steady_clock::now()) {
  ready_signal_.expires_at(created_ + kStartDeadline);
}

SandboxSession::~SandboxSession() {
  boost::system::error_code ignored;
  channel_.close(ignored);
}

void SandboxSession::attach(int channel_fd) {
  channel_.assign(asio::local::stream_protocol(), channel_fd);
  asio::co_spawn(executor_, read_loop(shared_from_this()),
                 [](std::exception_ptr e) { log_failure(e, "session channel reader"); });
}

asio::awaitable<bool> SandboxSession::ready() {
  // A sandbox that does not come up in time is ended, so that no call waits for it forever.
  const auto deadline = created_ + kStartDeadline;
  while (!is_ready_ && !ended_) {
    if (std::chrono::steady_clock::now() >= deadline) {
      spdlog::error("session {}: the sandbox did not start within {} s; ending it", id_,
                    kStartDeadline.count());
      on_run_ended("the sandbox did not start within " + std::to_string(kStartDeadline.count()) +
                   " s");
      break;
    }
    // The timer's expiry is the deadline, set once (several calls may wait at once); it is
    // cancelled to wake them when the toolbox is up or the run ends.
    co_await ready_signal_.async_wait(kUseTuple);
  }
  co_return is_ready_ && !ended_;
}

asio::awaitable<void> SandboxSession::read_loop([[maybe_unused]] std::shared_ptr<SandboxSession> self) {
  toolbox::FrameReader frames;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    auto [ec, n] = co_await channel_.async_read_some(asio::buffer(buf), kUseTuple);
    if (ec) break;
    if (!frames.feed({buf.data(), n})) {
      spdlog::warn("session {}: the toolbox sent a frame over the limit; ending the session", id_);
      break;
    }
    while (auto frame = frames.next()) {
      toolbox::Reply reply;
      std::string error;
      if (!toolbox::parse_reply(*frame, reply, error)) {
        // Which call it answered is unknown: rather than leave one waiting forever, the
        // session ends and every call in it is told why.
        spdlog::error("session {}: malformed toolbox reply ({}); ending the session", id_, error);
        on_run_ended("the sandbox's toolbox sent a malformed reply (" + error + ")");
        co_return;
      }
      if (reply.id == 0) {  // the toolbox is up
        is_ready_ = true;
        ready_signal_.cancel();
        continue;
      }
      auto it = pending_.find(reply.id);
      if (it == pending_.end()) continue;
      auto p = it->second;
      if (reply.progress) {
        if (p->progress) p->progress(reply.elapsed_ms);
        continue;
      }
      p->reply = std::move(reply);
      pending_.erase(it);
      p->wake.cancel();
    }
  }
  on_run_ended(ended_reason_.empty() ? "the sandbox's toolbox closed its channel" : ended_reason_);
}

void SandboxSession::on_run_ended(std::string reason) {
  // The runner's reason (a limit, a set-up failure) is more telling than the channel's end.
  if (ended_ && reason.find("closed its channel") == std::string::npos &&
      ended_reason_.find("closed its channel") != std::string::npos) {
    ended_reason_ = std::move(reason);
    return;
  }
  if (ended_) return;
  ended_ = true;
  ended_reason_ = std::move(reason);
  ready_signal_.cancel();
  for (auto& [id, p] : pending_) p->wake.cancel();
  pending_.clear();
  boost::system::error_code ignored;
  channel_.close(ignored);
}

void SandboxSession::send(std::string frame) {
  outbox_.push_back(std::move(frame));
  if (writing_) return;
  writing_ = true;
  asio::co_spawn(executor_, write_loop(shared_from_this()), asio::detached);
}

asio::awaitable<void> SandboxSession::write_loop([[maybe_unused]] std::shared_ptr<SandboxSession> self) {
  while (!outbox_.empty() && !ended_) {
    std::string frame = std::move(outbox_.front());
    outbox_.pop_front();
    auto [ec, n] = co_await asio::async_write(channel_, asio::buffer(frame), kUseTuple);
    if (ec) break;
  }
  outbox_.clear();
  writing_ = false;
}

asio::awaitable<Result<toolbox::Reply>> SandboxSession::call(toolbox::Request request,
                                                            Progress progress) {
  if (!co_await ready()) co_return make_error_code(Errc::kLinkClosed);
  if (request.id == 0) request.id = allocate_id();
  auto p = std::make_shared<Pending>(executor_);
  p->wake.expires_at(asio::steady_timer::time_point::max());
  p->progress = std::move(progress);
  pending_[request.id] = p;
  send(toolbox::encode(request));
  auto [ec] = co_await p->wake.async_wait(kUseTuple);
  (void)ec;
  if (!p->reply) {
    // Cancelled by our caller (the wait was interrupted while the toolbox still works), or the
    // sandbox ended.
    if (!ended_ && pending_.erase(request.id)) cancel(request.id);
    co_return make_error_code(Errc::kLinkClosed);
  }
  co_return std::move(*p->reply);
}

void SandboxSession::cancel(uint64_t request_id) {
  if (ended_) return;
  toolbox::Request c;
  c.op = toolbox::Op::kCancel;
  c.target = request_id;
  send(toolbox::encode(c));
}

void SandboxSession::close() {
  if (ended_) return;
  on_run_ended("the session ended");
}

}  // namespace airlock::sandbox
