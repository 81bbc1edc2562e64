// sandbox-agent-init TOOL_PID: the init of a sandbox whose agent holds secrets that must not
// stay in the sandbox even as a copy (host-bound credentials). The cloned init execs it once the
// tool runs (containment.cc, RunSpec::clean_init), without capabilities and with every signal
// still blocked; it reaps, forwards termination signals to the tool and exits with the tool's
// status, as the cloned init would (pid.cc). A static program: nothing to load inside the
// sandbox's root. Exit status 125 when started any other way.
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "sandbox/steps.h"

int main(int argc, char** argv) {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (argc != 2 || ::getpid() != 1) return 125;
  char* end = nullptr;
  const long tool = std::strtol(argv[1], &end, 10);
  if (*end != '\0' || tool <= 1) return 125;
  return airlock::sandbox::run_init(static_cast<pid_t>(tool));
}
