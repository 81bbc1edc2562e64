// sandbox-agent-toolbox: runs inside every session's sandbox of the connected sandbox agent,
// as its tool, and carries out the agent toolset there (src/sandbox/toolbox.h). Its standard
// input is its channel to the agent. Not meant to be run by hand.
#include <unistd.h>

#include <cstdio>

#include "sandbox/toolbox.h"

int main(int argc, char**) {
  if (argc > 1 || ::isatty(0)) {
    std::fputs("sandbox-agent-toolbox runs inside a session's sandbox, started by "
               "'sandbox-agent start'; it is not run by hand\n",
               stderr);
    return 2;
  }
  return airlock::sandbox::run_toolbox(0);
}
