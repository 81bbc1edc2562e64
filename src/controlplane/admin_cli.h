// The `airlock` admin CLI as a library function, so tests can run it in-process. Talks to
// airlockd's admin API only; never opens airlockd's database.
#pragma once

namespace airlock::cli {

// Parses argv, performs the command, prints to stdout/stderr; returns the exit code
// (0 ok, 1 the server refused or failed, 2 usage or local configuration error).
int run(int argc, char** argv);

}  // namespace airlock::cli
