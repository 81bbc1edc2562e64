// ChildProcesses: every stdio server process mcp-tunnel has started, and the one place that
// reaps and stops them. Each process leads its own process group (the server and whatever it
// starts). A process whose session closed its stdin gets `stdin_grace` to exit, then SIGTERM to
// its group, then SIGKILL after `term_grace`; it is reaped when SIGCHLD says so, not by
// polling. A server has at most `max_processes` at once: a session that needs one more ends
// the least recently used session of that server first. stop_all(), awaited by Tunnel::stop(),
// ends every process before the tunnel exits; a child also gets SIGKILL from the kernel when
// the tunnel dies without stopping (PR_SET_PDEATHSIG, set in the child before exec).
// Owned by the Tunnel; used only on its executor (one thread).
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>

namespace airlock::tunnel {

namespace asio = boost::asio;

// One started process, shared by the transport that owns its pipes and by ChildProcesses.
struct ChildProcess {
  pid_t pid = -1;
  std::string server;
  bool exited = false;
  int status = 0;  // waitpid's, once exited
  std::chrono::steady_clock::time_point last_used;
  std::function<void()> evict;  // ends the owning session (closes the transport)
  bool stopping = false;        // stdin closed: on its way out
  std::unique_ptr<asio::steady_timer> timer;

  std::string describe() const;  // "exited with status 3", "was killed by signal 9", …
};

class ChildProcesses {
 public:
  struct Options {
    std::chrono::milliseconds stdin_grace{2000};  // to exit on its own once stdin is closed
    std::chrono::milliseconds term_grace{3000};   // from SIGTERM to SIGKILL
  };
  explicit ChildProcesses(asio::any_io_executor ex) : ChildProcesses(ex, Options{}) {}
  ChildProcesses(asio::any_io_executor ex, Options options);
  ~ChildProcesses();

  // Before starting a process of `server`: while `limit` (0: no limit) of its processes are
  // in use (not already stopping), ends the least recently used session that owns one.
  // Returns how many were ended.
  size_t make_room(const std::string& server, size_t limit);
  // A process was started. `evict` closes the transport that owns it (which calls stop());
  // a process without one (the tunnel's own catalog session) is never ended to make room.
  std::shared_ptr<ChildProcess> add(const std::string& server, pid_t pid, std::function<void()> evict);
  // The owner closed the process's stdin: stop it (see the header comment). Idempotent.
  void stop(const std::shared_ptr<ChildProcess>& child);

  // Collects the exit status of every process that has ended (SIGCHLD does this already;
  // for a caller that needs the status now, e.g. when the process's stdout closed).
  void reap();

  size_t running(const std::string& server) const;
  size_t running() const { return children_.size(); }
  uint64_t evicted(const std::string& server) const;

  // Ends every process: those whose stdin is closed get up to `stdin_grace` (at most 500 ms)
  // more, then every group SIGTERM, then SIGKILL after `term_grace`; returns once all are
  // reaped (or, should one be unkillable, a second after SIGKILL). Cancelling it leaves the
  // processes' own deadlines in force.
  asio::awaitable<void> stop_all();

 private:
  void wait_for_sigchld();
  void signal_group(ChildProcess& child, int sig);
  void arm(const std::shared_ptr<ChildProcess>& child, std::chrono::milliseconds after, int sig);

  asio::any_io_executor ex_;
  Options options_;
  asio::signal_set sigchld_;
  std::list<std::shared_ptr<ChildProcess>> children_;  // least recently added first
  std::map<std::string, uint64_t> evicted_;
  asio::steady_timer changed_;  // cancelled whenever a child is reaped
  bool closed_ = false;
};

}  // namespace airlock::tunnel
