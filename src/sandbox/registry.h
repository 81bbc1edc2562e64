// What pulling an image from an OCI registry decides, without any IO: image references, the
// registry's authentication challenge, credentials from a `.dockerconfigjson` document, the
// `registries:` settings, and reading manifests (an OCI image index or a Docker manifest list:
// the platform's entry; an OCI or Docker schema-2 manifest: its config and layers).
// image_pull.cc does the HTTP with these; unit-tested in registry_test.cc.
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace airlock::sandbox {

// HOST[:PORT]/REPOSITORY[:TAG][@sha256:…]. Only references whose first component is a
// registry host (it has a '.' or a ':', or is "localhost") are pulled; there is no default
// registry.
struct ImageReference {
  std::string registry;    // "registry.example.com:5000"
  std::string repository;  // "team/tool-executor"
  std::string tag;         // "latest" when neither tag nor digest is given
  std::string digest;      // "sha256:…" when pinned
  // "registry/repository:tag" or "registry/repository@digest" (as written, normalised).
  std::string str() const;
  // The manifest to ask for: the digest when pinned, else the tag.
  const std::string& manifest_ref() const { return digest.empty() ? tag : digest; }
};
// nullopt when `text` names no registry (then it is a local name) or is malformed; `error` says
// which (empty when it is a well-formed local name).
std::optional<ImageReference> parse_image_reference(const std::string& text, std::string& error);

// `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
struct AuthChallenge {
  std::string scheme;  // lower case: "bearer", "basic"
  std::map<std::string, std::string> params;
};
std::optional<AuthChallenge> parse_www_authenticate(const std::string& header);

struct RegistryCredentials {
  std::string username;
  std::string password;
};
// The credentials a `.dockerconfigjson` document (Kubernetes' kubernetes.io/dockerconfigjson
// secrets: {"auths": {"HOST": {"auth": base64("user:pass")} or {"username", "password"}}})
// holds for `host`; keys may also be written "https://HOST" or "https://HOST/v1/". nullopt
// when none; throws ConfigError when the document is malformed.
std::optional<RegistryCredentials> credentials_for(const std::string& docker_config_json,
                                                   const std::string& host);

// A `registries:` entry of sandbox.yaml.
struct RegistrySettings {
  std::string host;        // as in image references: HOST[:PORT]
  std::string ca_file;     // trust only this CA (PEM) for it
  std::string mirror;      // pull from this host instead (same repository paths)
  bool plain_http = false; // HTTP without TLS: only for a loopback host
};
boost::json::value registry_settings_to_json(const std::vector<RegistrySettings>& all);
std::vector<RegistrySettings> registry_settings_from_json(const boost::json::value& v);
// Empty when the host may be reached over plain HTTP (a loopback address or "localhost").
std::string plain_http_refusal(const std::string& host);

// The media types a pull asks for and accepts.
inline constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:…"
  uint64_t size = 0;
};

// "linux/amd64", "linux/arm64/v8"; nullopt with `error` for anything else.
struct Platform {
  std::string os, arch, variant;
};
std::optional<Platform> parse_platform(const std::string& text, std::string& error);

// An index or manifest list: the entry for `platform` ("linux/amd64", "linux/arm64/v8").
// nullopt with `error` naming the platforms it has.
std::optional<Descriptor> select_platform(const boost::json::value& index,
                                          const std::string& platform, std::string& error);
// True for an index or manifest list (by mediaType, or by having "manifests").
bool is_index(const boost::json::value& manifest, const std::string& content_type);

struct ImageManifest {
  Descriptor config;
  std::vector<Descriptor> layers;
};
// An OCI or Docker schema-2 image manifest; nullopt with `error` (schema 1, no layers, a
// descriptor without a sha256 digest or size).
std::optional<ImageManifest> parse_image_manifest(const boost::json::value& manifest,
                                                  std::string& error);

}  // namespace airlock::sandbox
