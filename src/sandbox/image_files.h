// Small file and format checks shared by image.cc (the store, in sandbox-agent) and
// image_unpack.cc (reading image contents, in sandbox-agent-unpack).
#pragma once

#include <boost/json/value.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace airlock::sandbox::image_files {

// nullopt with `error` naming the file when it is not valid JSON.
std::optional<boost::json::value> read_json(const std::filesystem::path& p, std::string& error);
// "sha256:" followed by 64 lowercase hex digits.
bool is_sha256_digest(const std::string& d);
// An OCI image layout directory (oci-layout, index.json).
bool is_oci_layout(const std::filesystem::path& dir);
// A `docker save` directory (manifest.json, no oci-layout).
bool is_docker_save(const std::filesystem::path& dir);

}  // namespace airlock::sandbox::image_files
