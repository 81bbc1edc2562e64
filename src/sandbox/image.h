// Images: what a sandbox's `image:` names becomes a root directory to build the run's root from.
//   "host"                 the host's system directories, read-only (mount.cc picks which)
//   /path/to/rootfs        a directory holding an unpacked root filesystem
// Anything else is refused with a message saying what is accepted. Resolution happens once per
// run, before the sandbox is built; the directory is only read.
#pragma once

#include <optional>
#include <string>

namespace airlock::sandbox {

struct ImageRoot {
  bool host = false;
  std::string dir;          // the root filesystem (when !host)
  std::string description;  // for the log
};

std::optional<ImageRoot> resolve_image(const std::string& image, std::string& error);

}  // namespace airlock::sandbox
