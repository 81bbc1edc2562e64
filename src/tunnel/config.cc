#include "tunnel/config.h"

#include <boost/url/parse.hpp>

#include <set>

#include "common/config_util.h"
#include "common/handshake.h"

namespace airlock::tunnel {
namespace {

void check_url(const std::string& url, const std::string& path) {
  if (url.rfind("stdio:", 0) == 0) {
    if (url.size() == 6) throw ConfigError(path + " 'stdio:' needs a command after the colon");
    return;
  }
  auto u = boost::urls::parse_uri(url);
  if (!u) {
    throw ConfigError(path + " '" + url +
                      "' is not a URL; use tcp://HOST:PORT, https://HOST/PATH or stdio:COMMAND");
  }
  const auto scheme = u->scheme();
  if (scheme != "tcp" && scheme != "http" && scheme != "https") {
    throw ConfigError(path + " scheme '" + std::string(scheme) +
                      "' is not supported; use tcp://, http://, https:// or stdio:");
  }
  if (u->has_userinfo()) {
    throw ConfigError(path + " must not carry credentials in the URL; name them under "
                      "'credentials' instead");
  }
  if (u->host().empty()) throw ConfigError(path + " '" + url + "' has no host");
  if (scheme == "tcp" && (!u->has_port() || u->port_number() == 0)) {
    throw ConfigError(path + " tcp:// URLs need a port, e.g. tcp://private-mcp:8080");
  }
}

}  // namespace

TunnelConfig parse_tunnel_config(const std::string& yaml_text, const std::string& origin) {
  TunnelConfig c;
  YAML::Node root = load_yaml_string(yaml_text, origin);
  if (!root || root.IsNull()) return c;
  expect_keys(root, "", {"name", "servers"});
  if (auto n = root["name"]) {
    c.name = read_string(n, "name");
    if (!proto::is_valid_resource_name(c.name)) {
      throw ConfigError("name '" + c.name + "' must be 1-63 characters of [A-Za-z0-9_.-]");
    }
  }
  if (auto servers = root["servers"]) {
    if (!servers.IsSequence()) throw ConfigError("servers must be a list");
    std::set<std::string> seen;
    for (size_t i = 0; i < servers.size(); ++i) {
      const std::string path = "servers[" + std::to_string(i) + "]";
      const YAML::Node s = servers[i];
      expect_keys(s, path,
                  {"name", "url", "credentials", "args", "env", "cwd", "ca_file",
                   "connect_timeout", "request_timeout", "max_message"});
      UpstreamServer u;
      if (!s["name"]) throw ConfigError(path + ".name is required");
      if (!s["url"]) throw ConfigError(path + ".url is required");
      u.name = read_string(s["name"], path + ".name");
      if (!proto::is_valid_resource_name(u.name)) {
        throw ConfigError(path + ".name '" + u.name + "' must be 1-63 characters of [A-Za-z0-9_.-]");
      }
      if (!seen.insert(u.name).second) {
        throw ConfigError(path + ".name '" + u.name + "' is used by another server");
      }
      u.url = read_string(s["url"], path + ".url");
      check_url(u.url, path + ".url");
      if (auto creds = s["credentials"]) {
        if (!creds.IsSequence()) throw ConfigError(path + ".credentials must be a list of names");
        for (size_t j = 0; j < creds.size(); ++j) {
          const std::string cpath = path + ".credentials[" + std::to_string(j) + "]";
          u.credentials.push_back(read_string(creds[j], cpath));
          if (!proto::is_valid_resource_name(u.credentials.back())) {
            throw ConfigError(cpath + " must be a credential name of [A-Za-z0-9_.-]");
          }
        }
      }
      const bool is_stdio = u.url.rfind("stdio:", 0) == 0;
      if (is_stdio) {
        std::string words = u.url.substr(6);
        size_t i0 = 0;
        while (i0 < words.size()) {
          const size_t sp = words.find(' ', i0);
          const size_t end = sp == std::string::npos ? words.size() : sp;
          if (end > i0) u.argv.push_back(words.substr(i0, end - i0));
          i0 = end + 1;
        }
        if (u.argv.empty()) throw ConfigError(path + ".url 'stdio:' needs a command after the colon");
      }
      for (const char* key : {"args", "env", "cwd"}) {
        if (s[key] && !is_stdio) {
          throw ConfigError(path + "." + key + " applies only to stdio: servers");
        }
      }
      if (auto args = s["args"]) {
        if (!args.IsSequence()) throw ConfigError(path + ".args must be a list of strings");
        for (size_t j = 0; j < args.size(); ++j) {
          u.argv.push_back(read_string(args[j], path + ".args[" + std::to_string(j) + "]"));
        }
      }
      if (auto env = s["env"]) {
        if (!env.IsMap()) throw ConfigError(path + ".env must be a map of NAME: value");
        for (const auto& kv : env) {
          const std::string k = kv.first.as<std::string>();
          if (k.empty() || k.find('=') != std::string::npos) {
            throw ConfigError(path + ".env key '" + k + "' is not an environment variable name");
          }
          u.env[k] = read_string(kv.second, path + ".env." + k);
        }
      }
      if (auto cwd = s["cwd"]) u.cwd = read_string(cwd, path + ".cwd");
      if (auto ca = s["ca_file"]) {
        if (u.url.rfind("https://", 0) != 0) {
          throw ConfigError(path + ".ca_file applies only to https:// servers");
        }
        u.ca_file = read_string(ca, path + ".ca_file");
      }
      if (auto t = s["connect_timeout"]) u.connect_timeout = read_duration(t, path + ".connect_timeout");
      if (auto t = s["request_timeout"]) u.request_timeout = read_duration(t, path + ".request_timeout");
      if (auto m = s["max_message"]) u.max_message = read_byte_size(m, path + ".max_message");
      c.servers.push_back(std::move(u));
    }
  }
  return c;
}

TunnelConfig load_tunnel_config(const std::string& path) {
  return parse_tunnel_config(YAML::Dump(load_yaml_file(path)), path);
}

}  // namespace airlock::tunnel
