// The part of image handling that reads image contents — untrusted input — with libarchive and
// SHA-256 (OpenSSL). It runs in a process of its own, `sandbox-agent-unpack` (see
// src/exe/sandbox_agent_unpack_main.cc), which holds no secrets and is started only when an
// image must be unpacked; sandbox-agent itself links neither library, so it starts faster and
// a flaw in either cannot reach the credentials it holds.
#pragma once

#include <optional>
#include <string>

namespace airlock::sandbox {

// Unpacks an OCI layout directory, an OCI archive or a `docker save` tarball (or directory)
// into `store`/rootfs/<digest> — layers in order, whiteouts honoured, every blob's digest
// verified — unless that directory is already there. Returns the image's digest
// ("sha256:…"), or nullopt with `error`. `store` must exist.
std::optional<std::string> unpack_image(const std::string& source, const std::string& store,
                                        std::string& error);

// Applies one layer (a tar, optionally gzip/zstd/xz-compressed) onto `root`: whiteouts
// (".wh.NAME" removes NAME from lower layers, ".wh..wh..opq" empties its directory of lower
// layers' entries), then the entries. Refuses absolute paths, "..", and writing through a
// symlink; leaves out device nodes. Empty on success, else the error.
std::string apply_layer(const std::string& layer_file, const std::string& root);

}  // namespace airlock::sandbox
