// sandbox-agent-unpack SOURCE STORE: unpacks one image (an OCI layout directory, an OCI archive
// or a `docker save` tarball) into sandbox-agent's image store and prints its digest.
// sandbox-agent starts it when an image must be unpacked, so that image contents — untrusted
// input — are read by libarchive in a process that holds no secrets (sandbox/image_unpack.h).
// The error, if any, goes to stderr; exit status 0 or 1 (2: bad arguments).
#include <sys/prctl.h>

#include <filesystem>
#include <iostream>
#include <string>

#include "sandbox/image_unpack.h"

int main(int argc, char** argv) {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  const std::string usage =
      "usage: sandbox-agent-unpack SOURCE STORE\n"
      "Unpacks SOURCE (an OCI layout directory, an OCI archive or a `docker save` tarball) into\n"
      "the image store directory STORE and prints the image's digest. Started by sandbox-agent;\n"
      "to add an image to the store yourself, use `sandbox-agent image import`.\n";
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::cout << usage;
    return 0;
  }
  if (argc != 3) {
    std::cerr << usage;
    return 2;
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(argv[2], ec)) {
    std::cerr << "the image store " << argv[2] << " is not a directory\n";
    return 1;
  }
  std::string error;
  auto digest = airlock::sandbox::unpack_image(argv[1], argv[2], error);
  if (!digest) {
    std::cerr << error << "\n";
    return 1;
  }
  std::cout << *digest << "\n";
  return 0;
}
