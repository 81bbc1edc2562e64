#include "sandbox/image.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace airlock::sandbox {

std::optional<ImageRoot> resolve_image(const std::string& image, std::string& error) {
  ImageRoot r;
  if (image == "host") {
    r.host = true;
    r.description = "host (system directories, read-only)";
    return r;
  }
  struct stat st {};
  if (::stat(image.c_str(), &st) != 0) {
    if (image.find('/') == std::string::npos || image.find(':') != std::string::npos) {
      error = "image '" + image + "' is not 'host' nor a directory, and image references are "
              "not resolved by this build; unpack the image into a directory and give its path";
    } else {
      error = "image '" + image + "': " + std::strerror(errno);
    }
    return std::nullopt;
  }
  if (!S_ISDIR(st.st_mode)) {
    error = "image '" + image + "' is not a directory holding a root filesystem";
    return std::nullopt;
  }
  char real[PATH_MAX];
  if (!::realpath(image.c_str(), real)) {
    error = "image '" + image + "': " + std::strerror(errno);
    return std::nullopt;
  }
  r.dir = real;
  r.description = "root filesystem " + r.dir;
  return r;
}

}  // namespace airlock::sandbox
