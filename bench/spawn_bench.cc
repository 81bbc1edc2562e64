// spawn_bench: start-to-exit latency of a command run N times in a row, and the largest
// resident set of the process it starts (ru_maxrss from wait4). Used by
// bench/sandbox_bench.sh to compare `sandbox-agent run` with bubblewrap on the same command.
//   spawn_bench RUNS -- PROGRAM ARGS... [:: PROGRAM ARGS...]...
// With several commands (separated by "::") the runs are interleaved — A, B, A, B, … — so that
// a noisy machine (a VM whose host takes CPU time now and then) weighs on each alike.
// Prints one line per command: runs, p50, p99 and max in microseconds, failures, max RSS in KiB.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern char** environ;

namespace {

struct Command {
  std::vector<char*> argv;  // null-terminated
  std::vector<double> us;
  long max_rss = 0;
  int failures = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || std::strcmp(argv[2], "--") != 0) {
    std::fprintf(stderr, "usage: spawn_bench RUNS -- PROGRAM ARGS... [:: PROGRAM ARGS...]...\n");
    return 2;
  }
  const int runs = std::atoi(argv[1]);
  if (runs < 1 || runs > 100000) {
    std::fprintf(stderr, "spawn_bench: RUNS must be 1-100000\n");
    return 2;
  }
  std::vector<Command> commands(1);
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "::") == 0) {
      commands.emplace_back();
      continue;
    }
    commands.back().argv.push_back(argv[i]);
  }
  for (auto& c : commands) {
    if (c.argv.empty()) {
      std::fprintf(stderr, "spawn_bench: an empty command around '::'\n");
      return 2;
    }
    c.argv.push_back(nullptr);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  for (int i = 0; i < runs; ++i) {
    for (auto& c : commands) {
      const auto t0 = std::chrono::steady_clock::now();
      pid_t pid = 0;
      if (posix_spawn(&pid, c.argv[0], &actions, nullptr, c.argv.data(), environ) != 0) {
        std::perror("posix_spawn");
        return 1;
      }
      int status = 0;
      rusage ru{};
      wait4(pid, &status, 0, &ru);
      const auto t1 = std::chrono::steady_clock::now();
      c.us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      c.max_rss = std::max(c.max_rss, ru.ru_maxrss);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++c.failures;
    }
  }
  int failures = 0;
  for (size_t k = 0; k < commands.size(); ++k) {
    auto& c = commands[k];
    std::sort(c.us.begin(), c.us.end());
    auto pct = [&](double p) {
      return c.us[std::min(c.us.size() - 1, static_cast<size_t>(p * c.us.size()))];
    };
    if (commands.size() > 1) std::printf("command=%zu ", k + 1);
    std::printf("runs=%d p50_us=%.0f p99_us=%.0f max_us=%.0f failures=%d max_rss_kib=%ld\n", runs,
                pct(0.50), pct(0.99), c.us.back(), c.failures, c.max_rss);
    failures += c.failures;
  }
  return failures ? 1 : 0;
}
