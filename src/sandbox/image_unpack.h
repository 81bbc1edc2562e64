// The part of image handling that reads image contents — untrusted input — with libarchive and
// SHA-256 (OpenSSL). It runs in a process of its own, `sandbox-agent-unpack` (see
// src/exe/sandbox_agent_unpack_main.cc), started only when an image must be unpacked or pulled
// (image_pull.h); it dies with the process that started it. That
// process never holds the agent's secrets, keeps (as root) only the capabilities extraction
// needs, and cannot trace the agent or read its memory; sandbox-agent itself links neither
// library, which also makes it start faster. The unpacker is not a sandbox of its own: with
// dac_override it can read any file root can.
#pragma once

#include <cstddef>
#include <ctime>
#include <optional>
#include <string>

namespace airlock::sandbox {

// SHA-256 over bytes given piece by piece; digest() gives "sha256:<64 hex>" once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  std::string digest();

 private:
  struct Ctx;
  Ctx* ctx_;
};

// Unpacks an OCI layout directory, an OCI archive or a `docker save` tarball (or directory)
// into `store`/rootfs/<digest> — layers in order, whiteouts honoured, every blob's digest
// verified — unless that directory is already there. Returns the image's digest
// ("sha256:…"), or nullopt with `error`. `store` must exist.
std::optional<std::string> unpack_image(const std::string& source, const std::string& store,
                                        std::string& error);

// Removes what unpacks and pulls killed outright left in `store` (a pull's `.partial` blobs and
// its `pulls/` layout, a half-unpacked `rootfs/*.partial-PID`, an `extract-PID` directory): each
// names its process, and is removed when that process is gone and it was last changed more
// than `min_age` seconds ago. Never anything a later run would use. Returns how many.
size_t remove_abandoned_work(const std::string& store, time_t min_age = 60);

// Applies one layer (a tar, optionally gzip/zstd/xz-compressed) onto `root`: whiteouts
// (".wh.NAME" removes NAME from lower layers, ".wh..wh..opq" empties its directory of lower
// layers' entries), then the entries. Refuses absolute paths, "..", and writing through a
// symlink; leaves out device nodes. Empty on success, else the error.
std::string apply_layer(const std::string& layer_file, const std::string& root);

// A skill's archive (a zip, or a tar optionally compressed), extracted into the directory
// `dest` (which must not exist yet; it is created) for a Claude Managed Agents session's
// skills/ folder. Stricter than an image layer: only regular files and directories are made
// (a symlink, a hard link, a device or a FIFO is left out); an absolute path, "..", more than
// `max_entries` entries or more than `max_bytes` of file contents refuses the whole archive. Files
// are 0644, or 0755 when the archive marks them executable; directories 0755. Empty on
// success, else the error (and `dest` removed).
std::string extract_skill(const std::string& archive_file, const std::string& dest,
                          size_t max_bytes = 64u << 20, size_t max_entries = 10'000);

}  // namespace airlock::sandbox
