// airlock: the admin CLI. Everything is in airlock::cli::run.
#include "controlplane/admin_cli.h"

int main(int argc, char** argv) { return airlock::cli::run(argc, argv); }
