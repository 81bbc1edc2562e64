#include "sandbox/config.h"

#include <boost/json.hpp>

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>

#include "common/config_util.h"
#include "sandbox/allowlist.h"

namespace airlock::sandbox {
namespace {

// A YAML node as JSON (custom tools' schemas are JSON Schema written in YAML). Plain scalars
// become null, booleans or numbers when they read as such; quoted ones stay strings.
boost::json::value yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      boost::json::object o;
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return o;
    }
    case YAML::NodeType::Sequence: {
      boost::json::array a;
      for (const auto& item : n) a.push_back(yaml_to_json(item));
      return a;
    }
    case YAML::NodeType::Scalar: {
      const std::string text = n.Scalar();
      if (n.Tag() == "!") return boost::json::string(text);  // quoted
      if (text == "null" || text == "~") return nullptr;
      if (text == "true") return true;
      if (text == "false") return false;
      if (!text.empty() && text.find_first_not_of("+-0123456789") == std::string::npos) {
        try {
          return static_cast<int64_t>(std::stoll(text));
        } catch (const std::exception&) {
        }
      }
      if (!text.empty() && text.find_first_not_of("+-0123456789.eE") == std::string::npos) {
        try {
          size_t used = 0;
          const double d = std::stod(text, &used);
          if (used == text.size()) return d;
        } catch (const std::exception&) {
        }
      }
      return boost::json::string(text);
    }
    default:
      return nullptr;
  }
}


std::string lower_ascii(std::string_view text) {
  std::string out(text);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// Fields the proxy itself owns (framing, the connection, the proxy hop, the target): a
// credential in one of them would break the request or reach another hop.
constexpr std::string_view kProxyOwnedHeaders[] = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
    "upgrade", "expect", "proxy-authorization", "proxy-connection", "proxy-authenticate"};

HttpCredential read_http_credential(const YAML::Node& n, size_t i, const Allowlist& allowed) {
  const std::string path = "sandbox.http_credentials[" + std::to_string(i) + "]";
  if (!n.IsMap()) throw ConfigError(path + " must be a map with host, header and value");
  expect_keys(n, path, {"host", "header", "value", "ca_file"});
  for (const char* key : {"host", "header", "value"}) {
    if (!n[key]) throw ConfigError(path + "." + key + " is required");
  }
  HttpCredential h;
  h.host = read_string(n["host"], path + ".host");
  std::string error;
  auto target = parse_allow_entry(h.host, error);
  if (!target) throw ConfigError(path + ".host: " + error);
  if (target->kind == AllowEntry::Kind::kNetwork) {
    throw ConfigError(path + ".host '" + h.host + "' must be a host name (\"api.example.com\" or "
                      "\"*.example.com\"): the proxy presents a certificate for the name");
  }
  h.target = *target;
  // Reachable at all? A name under a wildcard stands for every name it covers.
  const std::string sample =
      target->kind == AllowEntry::Kind::kSubdomains ? "a." + target->name : target->name;
  if (auto refusal = allowed.refuse_request(sample, target->port ? target->port : 443)) {
    throw ConfigError(path + ".host '" + h.host + "' can never be reached: " + *refusal +
                      "; add it to sandbox.network.allowed_outbound");
  }
  h.header = read_string(n["header"], path + ".header");
  if (h.header.empty() ||
      h.header.find_first_not_of("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"
                                 "klmnopqrstuvwxyz") != std::string::npos) {
    throw ConfigError(path + ".header '" + h.header + "' is not an HTTP field name");
  }
  for (auto owned : kProxyOwnedHeaders) {
    if (lower_ascii(h.header) == owned) {
      throw ConfigError(path + ".header '" + h.header + "' is set by the proxy itself; use "
                        "another header (e.g. Authorization)");
    }
  }
  h.value = read_string(n["value"], path + ".value");
  const auto refs = secrets::parse_template(h.value, path + ".value");
  if (refs.agent_secret) {
    throw ConfigError(path + ".value: ${agent_secret} has no meaning in a sandbox; use "
                      "${secret:NAME}");
  }
  if (refs.secrets.empty()) {
    throw ConfigError(path + ".value must refer to a secret (\"Bearer ${secret:NAME}\"); a "
                      "value that is not secret can be sent by the tool itself");
  }
  if (h.value.find_first_of("\r\n") != std::string::npos) {
    throw ConfigError(path + ".value must be one line");
  }
  if (auto ca = n["ca_file"]) {
    h.ca_file = read_string(ca, path + ".ca_file");
    if (::access(h.ca_file.c_str(), R_OK) != 0) {
      throw ConfigError(path + ".ca_file '" + h.ca_file + "' cannot be read: " +
                        std::strerror(errno));
    }
  }
  return h;
}

// A decimal number with an optional fraction and exponent; the rest of `text` is the suffix.
std::optional<long double> leading_number(std::string_view text, std::string_view& suffix) {
  size_t i = 0;
  bool digits = false;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, digits = true;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, digits = true;
  }
  if (!digits) return std::nullopt;
  // An exponent ("1e9") but not the suffix "E" (exa) alone.
  if (i + 1 < text.size() && (text[i] == 'e' || text[i] == 'E') &&
      (std::isdigit(static_cast<unsigned char>(text[i + 1])) || text[i + 1] == '+' ||
       text[i + 1] == '-')) {
    size_t j = i + 1;
    if (text[j] == '+' || text[j] == '-') ++j;
    const size_t exp_start = j;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j > exp_start) i = j;
  }
  const std::string number(text.substr(0, i));
  suffix = text.substr(i);
  try {
    return std::stold(number);
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<uint64_t> to_whole(long double v) {
  if (!(v >= 0) || v > 1.8e19L) return std::nullopt;
  const auto rounded = static_cast<uint64_t>(std::ceil(v));
  if (rounded == 0) return std::nullopt;
  return rounded;
}

bool is_hostname_label(std::string_view name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

}  // namespace

std::optional<uint64_t> parse_cpu_quantity(std::string_view text) {
  std::string_view suffix;
  auto v = leading_number(text, suffix);
  if (!v) return std::nullopt;
  if (suffix.empty()) return to_whole(*v * 1000);
  if (suffix == "m") return to_whole(*v);
  return std::nullopt;
}

std::optional<uint64_t> parse_memory_quantity(std::string_view text) {
  std::string_view suffix;
  auto v = leading_number(text, suffix);
  if (!v) return std::nullopt;
  static const std::pair<std::string_view, long double> kSuffixes[] = {
      {"", 1},
      {"k", 1e3L},  {"M", 1e6L},  {"G", 1e9L},  {"T", 1e12L},  {"P", 1e15L},  {"E", 1e18L},
      {"Ki", 1024.0L},
      {"Mi", 1024.0L * 1024},
      {"Gi", 1024.0L * 1024 * 1024},
      {"Ti", 1024.0L * 1024 * 1024 * 1024},
      {"Pi", 1024.0L * 1024 * 1024 * 1024 * 1024},
      {"Ei", 1024.0L * 1024 * 1024 * 1024 * 1024 * 1024},
  };
  for (const auto& [s, factor] : kSuffixes) {
    if (suffix == s) return to_whole(*v * factor);
  }
  return std::nullopt;
}

std::string format_cpu(uint64_t millis) {
  if (millis % 1000 == 0) return std::to_string(millis / 1000);
  return std::to_string(millis) + "m";
}

std::string format_bytes(uint64_t bytes) {
  static const char* kUnits[] = {"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"};
  for (int i = 0; i < 6; ++i) {
    const uint64_t unit = uint64_t{1} << (10 * (6 - i));
    if (bytes >= unit && bytes % unit == 0) return std::to_string(bytes / unit) + kUnits[i];
  }
  return std::to_string(bytes);
}

SandboxConfig parse_sandbox_config(const std::string& yaml_text, const std::string& origin) {
  SandboxConfig c;
  YAML::Node root = load_yaml_string(yaml_text, origin);
  if (!root || root.IsNull() || !root.IsMap()) {
    throw ConfigError(origin + ": expected a map with a 'sandbox:' key");
  }
  expect_keys(root, "", {"sandbox", "secrets", "registries"});
  if (auto sec = root["secrets"]) c.secrets = secrets::parse_sources(sec, "secrets");
  if (auto regs = root["registries"]) {
    if (!regs.IsSequence()) throw ConfigError("registries must be a list of {host, ca_file, mirror, plain_http}");
    std::set<std::string> hosts;
    for (size_t i = 0; i < regs.size(); ++i) {
      const std::string path = "registries[" + std::to_string(i) + "]";
      expect_keys(regs[i], path, {"host", "ca_file", "mirror", "plain_http"});
      RegistrySettings r;
      if (!regs[i]["host"]) throw ConfigError(path + ".host is required (HOST[:PORT], as in image references)");
      r.host = read_string(regs[i]["host"], path + ".host");
      std::string ignored;
      if (!parse_image_reference(r.host + "/x", ignored)) {
        throw ConfigError(path + ".host '" + r.host + "' is not a registry host (it needs a '.' or a port, or is localhost)");
      }
      if (!hosts.insert(r.host).second) throw ConfigError(path + ".host '" + r.host + "' is listed twice");
      if (auto v = regs[i]["ca_file"]) r.ca_file = read_string(v, path + ".ca_file");
      if (auto v = regs[i]["mirror"]) {
        r.mirror = read_string(v, path + ".mirror");
        if (!parse_image_reference(r.mirror + "/x", ignored)) {
          throw ConfigError(path + ".mirror '" + r.mirror + "' is not a registry host");
        }
      }
      if (auto v = regs[i]["plain_http"]) {
        r.plain_http = read_bool(v, path + ".plain_http");
        if (r.plain_http) {
          if (std::string why = plain_http_refusal(r.mirror.empty() ? r.host : r.mirror); !why.empty()) {
            throw ConfigError(path + ".plain_http: " + why);
          }
        }
      }
      c.registries.push_back(std::move(r));
    }
  }
  const YAML::Node s = root["sandbox"];
  if (!s) throw ConfigError("sandbox is required");
  expect_keys(s, "sandbox",
              {"type", "name", "image", "pull", "platform", "image_pull_secret", "resources",
               "network", "credentials", "http_credentials", "env", "max_sessions",
               "session_idle_timeout",
               "warm_pool", "custom_tools"});
  if (auto v = s["pull"]) {
    const std::string p = read_string(v, "sandbox.pull");
    if (p == "if-missing") c.pull = PullPolicy::kIfMissing;
    else if (p == "always") c.pull = PullPolicy::kAlways;
    else if (p == "never") c.pull = PullPolicy::kNever;
    else throw ConfigError("sandbox.pull '" + p + "' must be if-missing, always or never");
  }
  if (auto v = s["platform"]) {
    c.platform = read_string(v, "sandbox.platform");
    std::string error;
    if (!parse_platform(c.platform, error)) throw ConfigError("sandbox.platform: " + error);
  }
  if (auto v = s["image_pull_secret"]) {
    c.image_pull_secret = read_string(v, "sandbox.image_pull_secret");
    if (!secrets::is_valid_secret_name(c.image_pull_secret)) {
      throw ConfigError("sandbox.image_pull_secret '" + c.image_pull_secret + "' is not a secret name");
    }
  }
  if (auto v = s["max_sessions"]) {
    const uint64_t n = read_uint(v, "sandbox.max_sessions");
    if (n < 1 || n > 4096) throw ConfigError("sandbox.max_sessions must be 1..4096");
    c.max_sessions = static_cast<uint32_t>(n);
  }
  if (auto v = s["session_idle_timeout"]) {
    c.session_idle_timeout = read_duration(v, "sandbox.session_idle_timeout");
    if (c.session_idle_timeout.count() <= 0) {
      throw ConfigError("sandbox.session_idle_timeout must be positive");
    }
  }
  if (auto v = s["warm_pool"]) {
    const uint64_t n = read_uint(v, "sandbox.warm_pool");
    if (n > 64) throw ConfigError("sandbox.warm_pool must be 0..64");
    c.warm_pool = static_cast<uint32_t>(n);
  }
  if (auto t = s["custom_tools"]) {
    if (!t.IsSequence()) throw ConfigError("sandbox.custom_tools must be a list of tools");
    std::set<std::string> names;
    for (size_t i = 0; i < t.size(); ++i) {
      const std::string path = "sandbox.custom_tools[" + std::to_string(i) + "]";
      if (!t[i].IsMap()) throw ConfigError(path + " must be a map");
      expect_keys(t[i], path, {"name", "description", "input_schema", "command", "timeout"});
      boost::json::object spec = yaml_to_json(t[i]).as_object();
      spec.erase("timeout");
      if (auto to = t[i]["timeout"]) spec["timeout_ms"] = read_duration(to, path + ".timeout").count();
      CustomTool tool = parse_custom_tool(spec, path);
      if (!names.insert(tool.name).second) {
        throw ConfigError(path + ".name '" + tool.name + "' is used by another custom tool");
      }
      c.custom_tools.push_back(std::move(tool));
    }
  }
  if (auto t = s["type"]) {
    const std::string type = read_string(t, "sandbox.type");
    if (type != "self-hosted") {
      throw ConfigError("sandbox.type '" + type + "' is not supported; sandbox-agent runs "
                        "'self-hosted' sandboxes");
    }
  }
  if (auto n = s["name"]) {
    c.name = read_string(n, "sandbox.name");
    if (!is_hostname_label(c.name)) {
      throw ConfigError("sandbox.name '" + c.name + "' must be a hostname label: 1-63 "
                        "characters of [A-Za-z0-9-], not starting or ending with '-'");
    }
  }
  if (auto i = s["image"]) {
    c.image = read_string(i, "sandbox.image");
    if (c.image.empty()) throw ConfigError("sandbox.image must not be empty");
    std::string error;
    if (!parse_image_reference(c.image, error) && !error.empty()) {
      throw ConfigError("sandbox.image '" + c.image + "': " + error);
    }
  }
  if (auto r = s["resources"]) {
    expect_keys(r, "sandbox.resources",
                {"cpu", "memory", "pids", "wall_time", "output_limit", "tmp_size"});
    // A Kubernetes quantity under resources: `key`, read with `parse`, or an error with `hint`.
    auto quantity = [&](const char* key, auto parse, const char* what, const char* hint) {
      const std::string path = std::string("sandbox.resources.") + key;
      const std::string text = read_string(r[key], path);
      auto q = parse(text);
      if (!q) throw ConfigError(path + " '" + text + "' is not " + what + "; write " + hint);
      return *q;
    };
    if (r["cpu"]) {
      c.resources.cpu_millis = quantity("cpu", parse_cpu_quantity, "a CPU quantity",
                                        "cores (\"2\", \"0.5\") or millicores (\"500m\")");
    }
    if (r["memory"]) {
      c.resources.memory_bytes =
          quantity("memory", parse_memory_quantity, "a memory quantity",
                   "e.g. \"4Gi\", \"512Mi\", \"1G\" or a number of bytes");
      if (c.resources.memory_bytes < 4 * 1024 * 1024) {
        throw ConfigError("sandbox.resources.memory '" + r["memory"].as<std::string>() +
                          "' is below 4Mi, too little to start a process");
      }
    }
    if (auto v = r["pids"]) {
      c.resources.pids = read_uint(v, "sandbox.resources.pids");
      if (c.resources.pids < 2) {
        throw ConfigError("sandbox.resources.pids must be at least 2 (the sandbox's init and "
                          "the tool)");
      }
    }
    if (auto v = r["wall_time"]) {
      c.resources.wall_time = read_duration(v, "sandbox.resources.wall_time");
      if (c.resources.wall_time.count() <= 0) {
        throw ConfigError("sandbox.resources.wall_time must be positive");
      }
    }
    if (auto v = r["output_limit"]) {
      c.resources.output_limit = read_byte_size(v, "sandbox.resources.output_limit");
    }
    if (auto v = r["tmp_size"]) {
      c.resources.tmp_size = read_byte_size(v, "sandbox.resources.tmp_size");
      if (c.resources.tmp_size == 0) throw ConfigError("sandbox.resources.tmp_size must be positive");
    }
  }
  if (auto n = s["network"]) {
    expect_keys(n, "sandbox.network", {"allowed_outbound"});
    if (auto a = n["allowed_outbound"]) {
      if (!a.IsSequence()) throw ConfigError("sandbox.network.allowed_outbound must be a list");
      for (size_t i = 0; i < a.size(); ++i) {
        const std::string path = "sandbox.network.allowed_outbound[" + std::to_string(i) + "]";
        std::string pattern = read_string(a[i], path);
        std::string error;
        if (!parse_allow_entry(pattern, error)) throw ConfigError(path + ": " + error);
        c.allowed_outbound.push_back(std::move(pattern));
      }
    }
  }
  std::set<std::string> env_names;
  if (auto cr = s["credentials"]) {
    if (!cr.IsSequence()) throw ConfigError("sandbox.credentials must be a list");
    for (size_t i = 0; i < cr.size(); ++i) {
      const std::string path = "sandbox.credentials[" + std::to_string(i) + "]";
      expect_keys(cr[i], path, {"secret", "env_var"});
      if (!cr[i]["secret"]) throw ConfigError(path + ".secret is required");
      if (!cr[i]["env_var"]) throw ConfigError(path + ".env_var is required");
      Credential cred{read_string(cr[i]["secret"], path + ".secret"),
                      read_string(cr[i]["env_var"], path + ".env_var")};
      if (!secrets::is_valid_secret_name(cred.secret)) {
        throw ConfigError(path + ".secret '" + cred.secret + "' is not a secret name");
      }
      if (cred.env_var.empty() || cred.env_var.find('=') != std::string::npos ||
          std::isdigit(static_cast<unsigned char>(cred.env_var[0]))) {
        throw ConfigError(path + ".env_var '" + cred.env_var +
                          "' is not an environment variable name");
      }
      if (!env_names.insert(cred.env_var).second) {
        throw ConfigError(path + ".env_var '" + cred.env_var + "' is set twice");
      }
      c.credentials.push_back(std::move(cred));
    }
  }
  if (auto hc = s["http_credentials"]) {
    if (!hc.IsSequence()) throw ConfigError("sandbox.http_credentials must be a list");
    const Allowlist allowed(c.allowed_outbound);
    for (size_t i = 0; i < hc.size(); ++i) {
      c.http_credentials.push_back(read_http_credential(hc[i], i, allowed));
      const auto& added = c.http_credentials.back();
      for (size_t j = 0; j + 1 < c.http_credentials.size(); ++j) {
        const auto& earlier = c.http_credentials[j];
        if (normalize_host(earlier.host) == normalize_host(added.host) &&
            lower_ascii(earlier.header) == lower_ascii(added.header)) {
          throw ConfigError("sandbox.http_credentials[" + std::to_string(i) + "] sets " +
                            added.header + " for '" + added.host + "' again (also entry " +
                            std::to_string(j) + ")");
        }
      }
    }
  }
  if (auto e = s["env"]) {
    if (!e.IsMap()) throw ConfigError("sandbox.env must be a map of NAME: value");
    for (const auto& kv : e) {
      const std::string k = kv.first.as<std::string>();
      if (k.empty() || k.find('=') != std::string::npos) {
        throw ConfigError("sandbox.env key '" + k + "' is not an environment variable name");
      }
      if (!env_names.insert(k).second) {
        throw ConfigError("sandbox.env." + k + " is also a credential's env_var");
      }
      const std::string v = read_string(kv.second, "sandbox.env." + k);
      if (v.find("${") != std::string::npos) {
        throw ConfigError("sandbox.env." + k + " must not refer to a secret; give it under "
                          "'credentials' so that the run's output is redacted");
      }
      c.env.emplace_back(k, v);
    }
  }
  // Every credential must name a secret some source can provide: dir: sources name their
  // own, so only the named ones can be checked here (the rest at load).
  bool has_dir = false;
  std::set<std::string> named;
  for (const auto& src : c.secrets) {
    if (src.name.empty()) has_dir = true;
    named.insert(src.name);
  }
  if (!c.image_pull_secret.empty() && !has_dir && !named.count(c.image_pull_secret)) {
    throw ConfigError("sandbox.image_pull_secret '" + c.image_pull_secret + "' is not among "
                      "'secrets:'; add {name: " + c.image_pull_secret + ", from: file:/path} (a "
                      ".dockerconfigjson document)");
  }
  for (size_t i = 0; i < c.http_credentials.size(); ++i) {
    const std::string path = "sandbox.http_credentials[" + std::to_string(i) + "].value";
    for (const auto& name : secrets::parse_template(c.http_credentials[i].value, path).secrets) {
      if (!has_dir && !named.count(name)) {
        throw ConfigError(path + " refers to secret '" + name + "', which is not among "
                          "'secrets:'; add {name: " + name + ", from: env:VAR | file:/path}");
      }
      for (const auto& cred : c.credentials) {
        if (cred.secret == name) {
          throw ConfigError(path + " uses secret '" + name + "', which sandbox.credentials also "
                            "puts in the sandbox as " + cred.env_var + ": a host-bound "
                            "credential must never enter it");
        }
      }
    }
  }
  for (size_t i = 0; i < c.credentials.size(); ++i) {
    if (!has_dir && !named.count(c.credentials[i].secret)) {
      throw ConfigError("sandbox.credentials[" + std::to_string(i) + "].secret '" +
                        c.credentials[i].secret + "' is not among 'secrets:'; add "
                        "{name: " + c.credentials[i].secret + ", from: env:VAR | file:/path}");
    }
  }
  return c;
}

SandboxConfig load_sandbox_config(const std::string& path) {
  return parse_sandbox_config(YAML::Dump(load_yaml_file(path)), path);
}

}  // namespace airlock::sandbox
