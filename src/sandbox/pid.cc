// PID namespace: the run's first process is PID 1 of a namespace of its own. It stays as the
// run's init: it reaps every orphan (so zombies never pile up against the pids limit),
// forwards termination signals to the tool, and exits with the tool's status — at which point
// the kernel kills whatever else is left in the namespace. Processes of the host and of other
// runs are neither visible nor signalable.
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "sandbox/steps.h"

namespace airlock::sandbox {
namespace {

constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

}  // namespace

Status prepare_init() {
  // The init carries the agent's memory image (it was cloned, not exec'd): no ptrace, no
  // /proc/1/mem or /proc/1/environ for the tool, which holds no capability to override it.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return Status::Sys("prctl", "PR_SET_DUMPABLE, 0", errno);
  // Signals are taken synchronously with sigwaitinfo; the tool unblocks them before exec.
  sigset_t all;
  sigfillset(&all);
  if (::sigprocmask(SIG_BLOCK, &all, nullptr) != 0) return Status::Sys("sigprocmask", "SIG_BLOCK, all", errno);
  return Status::Ok();
}

int run_init(pid_t tool) {
  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGCHLD);
  for (int s : kForwarded) sigaddset(&wanted, s);
  for (;;) {
    // Reap first: the tool may already be gone before the first SIGCHLD is waited for.
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG | __WALL);
      if (pid <= 0) break;
      if (pid == tool) {
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      }
    }
    siginfo_t info{};
    const int sig = ::sigwaitinfo(&wanted, &info);
    if (sig < 0) {
      if (errno == EINTR) continue;
      return 125;
    }
    if (sig != SIGCHLD) ::kill(tool, sig);
  }
}

}  // namespace airlock::sandbox
