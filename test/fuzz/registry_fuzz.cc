// libFuzzer target: what a registry (or a pull secret) hands sandbox-agent-unpack before any
// blob is verified — image references, WWW-Authenticate challenges, .dockerconfigjson
// documents, indexes and manifests. Nothing may crash, read out of bounds or loop; a reference
// that parses must print as a reference that parses back to the same parts.
#include <boost/json/parse.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/config_util.h"
#include "sandbox/registry.h"

using namespace airlock::sandbox;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string error;
  switch (data[0] % 5) {
    case 0: {
      auto r = parse_image_reference(text, error);
      if (r) {
        auto back = parse_image_reference(r->str(), error);
        if (!back || back->registry != r->registry || back->repository != r->repository ||
            back->tag != r->tag || back->digest != r->digest) {
          abort();
        }
      }
      break;
    }
    case 1:
      (void)parse_www_authenticate(text);
      break;
    case 2:
      try {
        (void)credentials_for(text, "registry.example.com");
      } catch (const airlock::ConfigError&) {
      }
      break;
    default: {
      boost::system::error_code ec;
      const boost::json::value v = boost::json::parse(text, ec);
      if (ec) break;
      if (is_index(v, "")) {
        (void)select_platform(v, data[0] % 2 ? "linux/amd64" : "linux/arm64/v8", error);
      } else {
        (void)parse_image_manifest(v, error);
      }
      (void)registry_settings_from_json(v);
      break;
    }
  }
  return 0;
}
