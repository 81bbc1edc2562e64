// sandbox-agent-unpack SOURCE STORE: unpacks one image (an OCI layout directory, an OCI archive
// or a `docker save` tarball) into sandbox-agent's image store and prints its digest.
// sandbox-agent starts it when an image must be unpacked, so that image contents — untrusted
// input — are read by libarchive in a process that holds no secrets (sandbox/image_unpack.h).
// As root it keeps only the capabilities that extracting files needs (chown, dac_override,
// fowner, fsetid): it cannot trace the agent or read its memory. The error, if any, goes to
// stderr; exit status 0 or 1 (2: bad arguments).
#include <linux/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <string>

#include "sandbox/image_unpack.h"
#include "sandbox/steps.h"

int main(int argc, char** argv) {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (::geteuid() == 0) {
    constexpr uint64_t kExtract = uint64_t{1} << CAP_CHOWN | uint64_t{1} << CAP_DAC_OVERRIDE |
                                  uint64_t{1} << CAP_FOWNER | uint64_t{1} << CAP_FSETID;
    if (auto s = airlock::sandbox::drop_capabilities(kExtract); !s.ok()) {
      std::cerr << "dropping capabilities: " << s.error << "\n";
      return 1;
    }
  }
  if (auto s = airlock::sandbox::set_no_new_privs(); !s.ok()) {
    std::cerr << s.error << "\n";
    return 1;
  }
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
