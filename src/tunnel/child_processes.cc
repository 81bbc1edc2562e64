#include "tunnel/child_processes.h"

#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace airlock::tunnel {

std::string ChildProcess::describe() const {
  if (!exited) return "is still running";
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "ended";
}

ChildProcesses::ChildProcesses(asio::any_io_executor ex, Options options)
    : ex_(ex), options_(options), sigchld_(ex, SIGCHLD), changed_(ex) {
  wait_for_sigchld();
}

ChildProcesses::~ChildProcesses() {
  closed_ = true;
  boost::system::error_code ec;
  sigchld_.cancel(ec);
  // Nothing may outlive the tunnel: whatever stop_all() did not end is killed now.
  for (auto& c : children_) {
    if (c->timer) c->timer->cancel();
    signal_group(*c, SIGKILL);
  }
}

void ChildProcesses::wait_for_sigchld() {
  sigchld_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec || closed_) return;
    reap();
    wait_for_sigchld();
  });
}

void ChildProcesses::reap() {
  for (auto it = children_.begin(); it != children_.end();) {
    auto& c = **it;
    int st = 0;
    const pid_t r = ::waitpid(c.pid, &st, WNOHANG);
    if (r == c.pid || (r < 0 && errno == ECHILD)) {
      c.exited = true;
      c.status = st;
      if (c.timer) c.timer->cancel();
      // Whatever it started in its group goes with it.
      ::kill(-c.pid, SIGKILL);
      spdlog::debug("server '{}' (pid {}) {}", c.server, c.pid, c.describe());
      it = children_.erase(it);
      changed_.cancel();
    } else {
      ++it;
    }
  }
}

void ChildProcesses::signal_group(ChildProcess& child, int sig) {
  if (child.exited) return;
  if (::kill(-child.pid, sig) != 0 && errno != ESRCH) {
    spdlog::warn("kill(-{}, {}) for server '{}' failed: {}", child.pid, sig, child.server,
                 std::strerror(errno));
  }
}

void ChildProcesses::arm(const std::shared_ptr<ChildProcess>& child,
                         std::chrono::milliseconds after, int sig) {
  if (!child->timer) child->timer = std::make_unique<asio::steady_timer>(ex_);
  child->timer->expires_after(after);
  std::weak_ptr<ChildProcess> weak = child;
  child->timer->async_wait([this, weak, sig](const boost::system::error_code& ec) {
    auto c = weak.lock();
    if (ec || !c || c->exited) return;
    if (sig == SIGTERM) {
      spdlog::info("server '{}' (pid {}) did not exit after its stdin closed; sending SIGTERM",
                   c->server, c->pid);
      signal_group(*c, SIGTERM);
      arm(c, options_.term_grace, SIGKILL);
    } else {
      spdlog::warn("server '{}' (pid {}) ignored SIGTERM; sending SIGKILL", c->server, c->pid);
      signal_group(*c, SIGKILL);
    }
  });
}

size_t ChildProcesses::make_room(const std::string& server, size_t limit) {
  if (limit == 0) return 0;
  // Processes already on their way out (their stdin closed) do not count: they have at most
  // stdin_grace + term_grace left.
  auto active = [&] {
    return static_cast<size_t>(std::count_if(children_.begin(), children_.end(), [&](const auto& c) {
      return c->server == server && !c->stopping;
    }));
  };
  size_t ended = 0;
  while (active() >= limit) {
    std::shared_ptr<ChildProcess> oldest;
    for (const auto& c : children_) {
      if (c->server != server || c->stopping || !c->evict) continue;
      if (!oldest || c->last_used < oldest->last_used) oldest = c;
    }
    if (!oldest) break;  // the rest are on their way out, or the tunnel's own
    spdlog::warn("server '{}' runs max_processes ({}) processes, one per agent session; ending the "
                 "least recently used session's (pid {}) to start another",
                 server, limit, oldest->pid);
    ++evicted_[server];
    ++ended;
    auto evict = std::move(oldest->evict);
    if (evict) evict();
    stop(oldest);  // in case the owner had already let go
  }
  return ended;
}

std::shared_ptr<ChildProcess> ChildProcesses::add(const std::string& server, pid_t pid,
                                                  std::function<void()> evict) {
  auto c = std::make_shared<ChildProcess>();
  c->pid = pid;
  c->server = server;
  c->last_used = std::chrono::steady_clock::now();
  c->evict = std::move(evict);
  children_.push_back(c);
  reap();  // it may be gone already, its SIGCHLD delivered before it was known here
  return c;
}

void ChildProcesses::stop(const std::shared_ptr<ChildProcess>& child) {
  child->evict = nullptr;  // its owner is letting go: nothing to call back any more
  if (child->exited || child->stopping) return;
  child->stopping = true;
  arm(child, options_.stdin_grace, SIGTERM);
}

size_t ChildProcesses::running(const std::string& server) const {
  return static_cast<size_t>(std::count_if(children_.begin(), children_.end(),
                                           [&](const auto& c) { return c->server == server; }));
}

uint64_t ChildProcesses::evicted(const std::string& server) const {
  auto it = evicted_.find(server);
  return it == evicted_.end() ? 0 : it->second;
}

asio::awaitable<void> ChildProcesses::stop_all() {
  using namespace std::chrono;
  auto wait_until = [this](steady_clock::time_point deadline) -> asio::awaitable<void> {
    while (!children_.empty() && steady_clock::now() < deadline) {
      changed_.expires_at(deadline);
      co_await changed_.async_wait(asio::as_tuple(asio::use_awaitable));
      reap();  // a SIGCHLD may be queued behind this wake-up
    }
  };
  reap();
  const auto grace = std::min<milliseconds>(options_.stdin_grace, milliseconds(500));
  if (std::any_of(children_.begin(), children_.end(), [](const auto& c) { return c->stopping; })) {
    co_await wait_until(steady_clock::now() + grace);
  }
  if (children_.empty()) co_return;
  spdlog::info("stopping {} server process(es)", children_.size());
  for (auto& c : children_) {
    c->stopping = true;
    if (c->timer) c->timer->cancel();
    signal_group(*c, SIGTERM);
  }
  co_await wait_until(steady_clock::now() + options_.term_grace);
  for (auto& c : children_) {
    spdlog::warn("server '{}' (pid {}) ignored SIGTERM; sending SIGKILL", c->server, c->pid);
    signal_group(*c, SIGKILL);
  }
  co_await wait_until(steady_clock::now() + seconds(1));
}

}  // namespace airlock::tunnel
