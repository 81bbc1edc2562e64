// Images: what a sandbox's `image:` names becomes a root directory to build the run's root from.
//   "host"                      the host's system directories, read-only (mount.cc picks which)
//   /path/to/rootfs             a directory holding an unpacked root filesystem
//   /path/to/oci-layout         an OCI image layout directory (oci-layout, index.json, blobs/)
//   /path/to/image.tar          an OCI archive or a `docker save` tarball
//   HOST[:PORT]/REPO[:TAG|@DIGEST]  an image from that registry: pulled into the store on first
//                               use (`pull:` if-missing, the default), on every resolve
//                               (always) or never, by sandbox-agent-unpack (image_pull.h)
//   name[:tag] (a reference)    an image imported into the local store with
//                               `sandbox-agent image import FILE --tag REF` (or pulled)
// Layered images are unpacked once — layers applied in order, whiteouts honoured, every blob's
// digest verified — into the store, keyed by the image's digest, and reused by later runs (a
// tarball, or a layout directory's index, is recognised by its device, inode, size and
// modification time, not re-read). Unpacking runs in a helper process, sandbox-agent-unpack,
// found next to the running executable (image_unpack.h says why).
// Blocking file and network work; one caller at a time per store (concurrent imports of the
// same image are safe: the result is renamed into place).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "sandbox/registry.h"

namespace airlock::sandbox {

inline constexpr const char* kDefaultImageStore = "/var/lib/airlock/images";
inline constexpr const char* kUnpackHelper = "sandbox-agent-unpack";
// The environment variable that gives the helper the id of the process that started it.
inline constexpr const char* kUnpackParentEnv = "SANDBOX_AGENT_PID";

struct ImageRoot {
  bool host = false;
  std::string dir;          // the root filesystem (when !host)
  std::string description;  // for the log
  std::string digest;       // the image's manifest digest, when it has one
};

enum class PullPolicy { kIfMissing, kAlways, kNever };
struct ImagePullOptions {
  PullPolicy policy = PullPolicy::kIfMissing;
  std::string platform = "linux/amd64";
  std::vector<RegistrySettings> registries;
  std::string docker_config;  // a .dockerconfigjson document (a secret's value), or empty
};

// Resolves `image` to a root; unpacks layered images into `store` first, and pulls registry
// references as `pull` says. nullopt with `error` saying what was wrong and what to do.
std::optional<ImageRoot> resolve_image(const std::string& image, const std::string& store,
                                       const ImagePullOptions& pull, std::string& error);

// Pulls a registry reference into `store` and records it (`sandbox-agent image pull`).
// Returns the image's digest, or nullopt with `error`.
std::optional<std::string> pull_to_store(const std::string& reference, const std::string& store,
                                         const ImagePullOptions& pull, std::string& error);

// Unpacks an OCI layout directory or tarball / docker-save tarball into `store` and records
// `tag` for it. Returns the image's digest ("sha256:…"), or nullopt with `error`.
std::optional<std::string> import_image(const std::string& source, const std::string& tag,
                                        const std::string& store, std::string& error);

struct StoredImage {
  std::string tag;
  std::string digest;
};
std::vector<StoredImage> list_images(const std::string& store);

// Uses this helper executable instead of the one next to the running executable (tests).
void set_unpack_helper(std::string path);
// Starts sandbox-agent-unpack with `args`: a process of its own, an environment of nothing but
// PATH and this process's id (so that the helper can tell whether it outlived us before its
// parent-death signal was armed), standard input from `in_fd` (-1: /dev/null), standard output
// and error to `out_fd`, no other descriptor. Its pid, or -1 with `error`.
pid_t spawn_unpack_helper(const std::vector<std::string>& args, int in_fd, int out_fd,
                          std::string& error);

// A reference's tag name for the store: "my-registry/tool-executor:latest"; a name without
// ":tag" gets ":latest". Empty if `ref` is not a valid reference.
std::string normalize_reference(const std::string& ref);

}  // namespace airlock::sandbox
