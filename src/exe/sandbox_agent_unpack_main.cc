// sandbox-agent-unpack SOURCE STORE: unpacks one image (an OCI layout directory, an OCI archive
// or a `docker save` tarball) into sandbox-agent's image store and prints its digest.
// sandbox-agent-unpack --pull REFERENCE STORE: pulls the image from its registry first
// (image_pull.h); the platform, `registries:` settings and registry credentials come as JSON on
// stdin, never in arguments or the environment.
// sandbox-agent-unpack --skill ARCHIVE DEST: extracts a Managed Agents skill's archive (zip or
// tar) into the new directory DEST (image_unpack.h, extract_skill) and prints "ok".
// sandbox-agent starts it when an image must be unpacked, so that image contents — untrusted
// input — are read by libarchive in a process that holds no secrets (sandbox/image_unpack.h).
// As root it keeps only the capabilities that extracting files needs (chown, dac_override,
// fowner, fsetid): it cannot trace the agent or read its memory. The error, if any, goes to
// stderr; exit status 0 or 1 (2: bad arguments).
#include <linux/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>

#include <boost/json/parse.hpp>

#include "sandbox/image.h"
#include "sandbox/image_pull.h"
#include "sandbox/image_unpack.h"
#include "sandbox/steps.h"

int main(int argc, char** argv) {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  // Ends with sandbox-agent: a pull or an unpack nobody waits for any more stops at once. The
  // signal is armed only now, so a parent that died since it started us (the window is wide in
  // a sanitizer build) is caught by comparing with the id it passed, not with getppid() read
  // here, which would already name whoever adopted us.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (const char* parent = std::getenv(airlock::sandbox::kUnpackParentEnv);
      parent != nullptr && std::to_string(::getppid()) != parent) {
    return 1;
  }
  // A skill is extracted only below DEST, which its own user owns: no capability at all.
  const bool skill = argc == 4 && std::string(argv[1]) == "--skill";
  if (::geteuid() == 0) {
    constexpr uint64_t kExtract = uint64_t{1} << CAP_CHOWN | uint64_t{1} << CAP_DAC_OVERRIDE |
                                  uint64_t{1} << CAP_FOWNER | uint64_t{1} << CAP_FSETID;
    if (auto s = airlock::sandbox::drop_capabilities(skill ? 0 : kExtract); !s.ok()) {
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
      "       sandbox-agent-unpack --pull REFERENCE STORE   (settings as JSON on stdin)\n"
      "       sandbox-agent-unpack --skill ARCHIVE DEST\n"
      "Unpacks SOURCE (an OCI layout directory, an OCI archive or a `docker save` tarball) into\n"
      "the image store directory STORE and prints the image's digest. Started by sandbox-agent;\n"
      "to add an image to the store yourself, use `sandbox-agent image import`.\n";
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::cout << usage;
    return 0;
  }
  if (skill) {
    const std::string error = airlock::sandbox::extract_skill(argv[2], argv[3]);
    if (!error.empty()) {
      std::cerr << error << "\n";
      return 1;
    }
    std::cout << "ok\n";
    return 0;
  }
  const bool pull = argc == 4 && std::string(argv[1]) == "--pull";
  if (pull) ++argv, --argc;
  if (argc != 3) {
    std::cerr << usage;
    return 2;
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(argv[2], ec)) {
    std::cerr << "the image store " << argv[2] << " is not a directory\n";
    return 1;
  }
  // What an earlier helper, killed outright, left behind.
  airlock::sandbox::remove_abandoned_work(argv[2]);
  std::string error;
  std::optional<std::string> digest;
  if (pull) {
    airlock::sandbox::PullRequest request;
    request.reference = argv[1];
    request.store = argv[2];
    const std::string input{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    boost::system::error_code ec;
    const auto settings = boost::json::parse(input.empty() ? "{}" : input, ec);
    if (ec || !settings.is_object()) {
      std::cerr << "the pull settings on stdin are not a JSON object\n";
      return 2;
    }
    const auto& o = settings.as_object();
    if (const auto* p = o.if_contains("platform"); p && p->is_string()) request.platform = p->as_string();
    if (const auto* r = o.if_contains("registries")) request.registries = airlock::sandbox::registry_settings_from_json(*r);
    if (const auto* d = o.if_contains("docker_config"); d && d->is_string()) request.docker_config = d->as_string();
    digest = airlock::sandbox::pull_image(request, error);
  } else {
    digest = airlock::sandbox::unpack_image(argv[1], argv[2], error);
  }
  if (!digest) {
    std::cerr << error << "\n";
    return 1;
  }
  std::cout << *digest << "\n";
  return 0;
}
