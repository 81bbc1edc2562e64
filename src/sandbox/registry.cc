#include "sandbox/registry.h"

#include <arpa/inet.h>

#include <boost/json/parse.hpp>

#include <algorithm>
#include <cctype>

#include "common/config_util.h"
#include "common/encoding.h"

namespace airlock::sandbox {
namespace json = boost::json;

namespace {

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// A repository path component: lower-case alphanumerics separated by '.', '_', '__' or '-'s.
bool valid_component(const std::string& c) {
  if (c.empty() || !is_lower_alnum(c.front()) || !is_lower_alnum(c.back())) return false;
  for (char ch : c) {
    if (!is_lower_alnum(ch) && ch != '.' && ch != '_' && ch != '-') return false;
  }
  return true;
}

bool valid_host(const std::string& h) {
  if (h.empty() || h.size() > 255) return false;
  for (char c : h) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':' &&
        c != '[' && c != ']') {
      return false;
    }
  }
  return true;
}

bool valid_tag(const std::string& t) {
  if (t.empty() || t.size() > 128) return false;
  if (!std::isalnum(static_cast<unsigned char>(t[0])) && t[0] != '_') return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

bool valid_digest(const std::string& d) {
  if (d.size() != 71 || d.rfind("sha256:", 0) != 0) return false;
  return std::all_of(d.begin() + 7, d.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

std::string str_field(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::optional<Descriptor> read_descriptor(const json::value& v, const std::string& what,
                                          std::string& error) {
  if (!v.is_object()) {
    error = what + " is not an object";
    return std::nullopt;
  }
  const auto& o = v.as_object();
  Descriptor d;
  d.media_type = str_field(o, "mediaType");
  d.digest = str_field(o, "digest");
  if (!valid_digest(d.digest)) {
    error = what + " has digest '" + d.digest.substr(0, 80) + "', not sha256:<64 hex>";
    return std::nullopt;
  }
  const auto* size = o.if_contains("size");
  if (!size || !size->is_number() || (size->is_int64() && size->as_int64() < 0)) {
    error = what + " has no size";
    return std::nullopt;
  }
  d.size = size->is_uint64() ? size->as_uint64()
           : size->is_int64() ? static_cast<uint64_t>(size->as_int64())
                              : static_cast<uint64_t>(size->as_double());
  return d;
}

}  // namespace

std::string ImageReference::str() const {
  std::string s = registry + "/" + repository;
  if (!digest.empty()) return s + "@" + digest;
  return s + ":" + tag;
}

std::optional<ImageReference> parse_image_reference(const std::string& text, std::string& error) {
  error.clear();
  const size_t slash = text.find('/');
  if (slash == std::string::npos) return std::nullopt;  // a local name
  const std::string first = text.substr(0, slash);
  if (first.find('.') == std::string::npos && first.find(':') == std::string::npos &&
      first != "localhost") {
    return std::nullopt;  // a local name with a path, e.g. "my-registry/tool"
  }
  ImageReference r;
  r.registry = first;
  if (!valid_host(r.registry)) {
    error = "'" + first + "' is not a registry host";
    return std::nullopt;
  }
  std::string rest = text.substr(slash + 1);
  if (const size_t at = rest.find('@'); at != std::string::npos) {
    r.digest = rest.substr(at + 1);
    rest.resize(at);
    if (!valid_digest(r.digest)) {
      error = "'" + r.digest + "' is not a digest (sha256:<64 lower-case hex>)";
      return std::nullopt;
    }
  }
  if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
    r.tag = rest.substr(colon + 1);
    rest.resize(colon);
    if (!valid_tag(r.tag)) {
      error = "tag '" + r.tag + "' must be 1-128 characters of [A-Za-z0-9_.-]";
      return std::nullopt;
    }
  }
  if (r.tag.empty() && r.digest.empty()) r.tag = "latest";
  r.repository = rest;
  size_t start = 0;
  while (true) {
    const size_t end = rest.find('/', start);
    const std::string c = rest.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!valid_component(c)) {
      error = "repository '" + rest + "' must be lower-case components of [a-z0-9._-] separated by '/'";
      return std::nullopt;
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return r;
}

std::optional<AuthChallenge> parse_www_authenticate(const std::string& header) {
  size_t i = 0;
  while (i < header.size() && header[i] == ' ') ++i;
  const size_t scheme_end = header.find(' ', i);
  AuthChallenge c;
  c.scheme = header.substr(i, scheme_end == std::string::npos ? std::string::npos : scheme_end - i);
  std::transform(c.scheme.begin(), c.scheme.end(), c.scheme.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  if (c.scheme.empty()) return std::nullopt;
  if (scheme_end == std::string::npos) return c;
  i = scheme_end;
  // key=value or key="quoted, value", separated by commas.
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) ++i;
    const size_t eq = header.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = header.substr(i, eq - i);
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char ch) { return std::tolower(ch); });
    i = eq + 1;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      for (++i; i < header.size() && header[i] != '"'; ++i) {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value.push_back(header[i]);
      }
      ++i;  // the closing quote
    } else {
      const size_t end = header.find(',', i);
      value = header.substr(i, end == std::string::npos ? std::string::npos : end - i);
      i = end == std::string::npos ? header.size() : end;
    }
    c.params[key] = value;
  }
  return c;
}

std::optional<RegistryCredentials> credentials_for(const std::string& docker_config_json,
                                                   const std::string& host) {
  boost::system::error_code ec;
  const json::value doc = json::parse(docker_config_json, ec);
  if (ec || !doc.is_object()) {
    throw ConfigError("the registry credentials are not a .dockerconfigjson document (JSON with "
                      "\"auths\")");
  }
  const auto* auths = doc.as_object().if_contains("auths");
  if (!auths || !auths->is_object()) {
    throw ConfigError("the registry credentials have no \"auths\" map (a .dockerconfigjson "
                      "document: {\"auths\": {\"HOST\": {\"auth\": \"…\"}}})");
  }
  for (const auto& [key, entry] : auths->as_object()) {
    std::string k(key);
    for (const char* scheme : {"https://", "http://"}) {
      if (k.rfind(scheme, 0) == 0) k = k.substr(std::string(scheme).size());
    }
    if (const size_t slash = k.find('/'); slash != std::string::npos) k.resize(slash);
    if (k != host) continue;
    if (!entry.is_object()) throw ConfigError("the registry credentials for " + host + " are not an object");
    const auto& e = entry.as_object();
    RegistryCredentials c;
    if (const std::string auth = str_field(e, "auth"); !auth.empty()) {
      auto decoded = from_base64(auth);
      const size_t colon = decoded ? decoded->find(':') : std::string::npos;
      if (colon == std::string::npos) {
        throw ConfigError("the registry credentials for " + host + ": \"auth\" is not "
                          "base64 of USER:PASSWORD");
      }
      c.username = decoded->substr(0, colon);
      c.password = decoded->substr(colon + 1);
    } else {
      c.username = str_field(e, "username");
      c.password = str_field(e, "password");
    }
    if (c.username.empty()) throw ConfigError("the registry credentials for " + host + " name no user");
    return c;
  }
  return std::nullopt;
}

json::value registry_settings_to_json(const std::vector<RegistrySettings>& all) {
  json::array out;
  for (const auto& r : all) {
    out.push_back(json::object{{"host", r.host}, {"ca_file", r.ca_file}, {"mirror", r.mirror},
                               {"plain_http", r.plain_http}});
  }
  return out;
}

std::vector<RegistrySettings> registry_settings_from_json(const json::value& v) {
  std::vector<RegistrySettings> out;
  if (!v.is_array()) return out;
  for (const auto& e : v.as_array()) {
    if (!e.is_object()) continue;
    const auto& o = e.as_object();
    RegistrySettings r;
    r.host = str_field(o, "host");
    r.ca_file = str_field(o, "ca_file");
    r.mirror = str_field(o, "mirror");
    const auto* p = o.if_contains("plain_http");
    r.plain_http = p && p->is_bool() && p->as_bool();
    out.push_back(std::move(r));
  }
  return out;
}

std::string plain_http_refusal(const std::string& host) {
  std::string name = host;
  if (!name.empty() && name.front() == '[') {
    name = name.substr(1, name.find(']') - 1);
  } else if (const size_t colon = name.rfind(':'); colon != std::string::npos &&
                                                   name.find(':') == colon) {
    name.resize(colon);
  }
  if (name == "localhost") return {};
  in_addr a4{};
  in6_addr a6{};
  if (::inet_pton(AF_INET, name.c_str(), &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127) return {};
  if (::inet_pton(AF_INET6, name.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6)) return {};
  return "plain_http is allowed only for a loopback registry (127.0.0.0/8, ::1, localhost), "
         "not " + host + ": registry traffic and its credentials would cross the network "
         "unencrypted";
}

bool is_index(const json::value& manifest, const std::string& content_type) {
  if (content_type.rfind(kOciIndex, 0) == 0 || content_type.rfind(kDockerList, 0) == 0) return true;
  if (!manifest.is_object()) return false;
  const std::string mt = str_field(manifest.as_object(), "mediaType");
  if (mt == kOciIndex || mt == kDockerList) return true;
  return mt.empty() && manifest.as_object().contains("manifests");
}

std::optional<Platform> parse_platform(const std::string& text, std::string& error) {
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t end = text.find('/', start);
    parts.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty() ||
      (parts.size() == 3 && parts[2].empty())) {
    error = "platform '" + text + "' must be OS/ARCH[/VARIANT], e.g. linux/amd64";
    return std::nullopt;
  }
  return Platform{parts[0], parts[1], parts.size() == 3 ? parts[2] : ""};
}

std::optional<Descriptor> select_platform(const json::value& index, const std::string& platform,
                                          std::string& error) {
  const auto want = parse_platform(platform, error);
  if (!want) return std::nullopt;
  const auto* manifests = index.is_object() ? index.as_object().if_contains("manifests") : nullptr;
  if (!manifests || !manifests->is_array()) {
    error = "the image index lists no manifests";
    return std::nullopt;
  }
  std::string offered;
  for (size_t i = 0; i < manifests->as_array().size(); ++i) {
    const auto& m = manifests->as_array()[i];
    const auto* plat = m.is_object() ? m.as_object().if_contains("platform") : nullptr;
    if (!plat || !plat->is_object()) continue;
    const std::string os = str_field(plat->as_object(), "os");
    const std::string arch = str_field(plat->as_object(), "architecture");
    const std::string variant = str_field(plat->as_object(), "variant");
    const std::string name = os + "/" + arch + (variant.empty() ? "" : "/" + variant);
    if (os == "unknown") continue;  // attestations
    offered += (offered.empty() ? "" : ", ") + name;
    if (os == want->os && arch == want->arch && (want->variant.empty() || variant == want->variant)) {
      return read_descriptor(m, "manifests[" + std::to_string(i) + "]", error);
    }
  }
  error = "the image has no " + platform + " variant (it has: " +
          (offered.empty() ? std::string("none") : offered) + "); set `platform:` to one of those";
  return std::nullopt;
}

std::optional<ImageManifest> parse_image_manifest(const json::value& manifest, std::string& error) {
  if (!manifest.is_object()) {
    error = "the manifest is not a JSON object";
    return std::nullopt;
  }
  const auto& o = manifest.as_object();
  if (const auto* sv = o.if_contains("schemaVersion"); !sv || !sv->is_int64() || sv->as_int64() != 2) {
    error = "the manifest is not schema version 2 (Docker schema 1 images are not supported; "
            "push the image again with a current client)";
    return std::nullopt;
  }
  const std::string mt = str_field(o, "mediaType");
  if (!mt.empty() && mt != kOciManifest && mt != kDockerManifest) {
    error = "the manifest's media type " + mt + " is not an image manifest";
    return std::nullopt;
  }
  ImageManifest m;
  const auto* config = o.if_contains("config");
  if (!config) {
    error = "the manifest has no config";
    return std::nullopt;
  }
  auto c = read_descriptor(*config, "the manifest's config", error);
  if (!c) return std::nullopt;
  m.config = *c;
  const auto* layers = o.if_contains("layers");
  if (!layers || !layers->is_array()) {
    error = "the manifest has no layers";
    return std::nullopt;
  }
  for (size_t i = 0; i < layers->as_array().size(); ++i) {
    auto l = read_descriptor(layers->as_array()[i], "layers[" + std::to_string(i) + "]", error);
    if (!l) return std::nullopt;
    m.layers.push_back(*l);
  }
  return m;
}

}  // namespace airlock::sandbox
