// The toolbox: the process a session's sandbox runs as its tool (sandbox-agent-toolbox, a
// static program the agent binds into every sandbox read-only). It carries out the agent
// toolset inside the sandbox, so every tool — bash included — sees exactly the sandbox's
// filesystem, processes and network, and nothing else:
//   bash       one persistent shell per session (its working directory and exported variables
//              carry over); each command runs in it with stdin from /dev/null, its output
//              (stdout and stderr together) capped; a timeout or a cancel kills every process
//              the command started, and the shell itself if it does not come back
//   read, write, edit   files, through the sandbox's own view of them
//   glob, grep          walks of the sandbox's tree, in a child process each (cancellable)
//   web_fetch           an HTTP(S) GET through the sandbox's egress proxy, in a child process
//   exec                a custom tool's argv, executed directly (never through a shell)
// It speaks toolbox_protocol.h on `channel` and exits when the agent closes it. Single-
// threaded: one poll loop over the channel, the shell and the children it started.
#pragma once

namespace airlock::sandbox {

int run_toolbox(int channel);

}  // namespace airlock::sandbox
