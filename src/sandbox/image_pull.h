// Pulling an image from an OCI registry (the OCI Distribution API) into sandbox-agent's image
// store. Runs in sandbox-agent-unpack (`pull` mode), never in the agent: registry answers are
// untrusted input, like image archives (image_unpack.h). Blocking; one pull per process.
//
// Manifests and blobs are fetched with the registry's authentication (anonymous, Basic, or a
// Bearer token from the challenge's token endpoint), each verified against its digest and size
// while it is written, and kept once by digest under STORE/blobs/sha256 — shared by every image
// that has them. A file appears there only once verified (written beside it, then renamed), so
// a pull interrupted at any point leaves nothing a later pull or run would use. The image is then
// unpacked (unpack_image) from an OCI layout made of links to those blobs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sandbox/registry.h"

namespace airlock::sandbox {

struct PullRequest {
  std::string reference;  // HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]
  std::string store;      // the image store directory (exists)
  std::string platform = "linux/amd64";
  std::vector<RegistrySettings> registries;
  std::string docker_config;  // a .dockerconfigjson document, or empty (anonymous)
};

// Returns the digest of the image's manifest (for an index: of the platform's manifest), or
// nullopt with `error` saying what failed.
std::optional<std::string> pull_image(const PullRequest& request, std::string& error);

}  // namespace airlock::sandbox
