#include "tunnel/config.h"

#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>
#include <set>

#include "common/config_util.h"
#include "common/handshake.h"

namespace airlock::tunnel {
namespace {

void check_url(const std::string& url, const std::string& path) {
  if (url.find("${") != std::string::npos) {
    throw ConfigError(path + " must not carry a secret (nor a query string holding one); "
                      "put it in 'headers' (http) or 'env' (stdio)");
  }
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

void add_refs(UpstreamServer& u, const secrets::TemplateRefs& refs) {
  for (const auto& name : refs.secrets) {
    if (std::find(u.credentials.begin(), u.credentials.end(), name) == u.credentials.end()) {
      u.credentials.push_back(name);
    }
  }
  u.uses_agent_secret = u.uses_agent_secret || refs.agent_secret;
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Where a server's credentials may go, and where never: headers for http(s), environment
// variables for stdio; never the URL, arguments or working directory; nothing for tcp.
void check_credentials(const YAML::Node& s, UpstreamServer& u, const std::string& path) {
  const bool is_stdio = u.url.rfind("stdio:", 0) == 0;
  const bool is_tcp = u.url.rfind("tcp:", 0) == 0;
  for (size_t i = 0; i < u.argv.size(); ++i) {
    if (u.argv[i].find("${") != std::string::npos) {
      throw ConfigError(path + ".args must not carry a secret: any local user can read a "
                        "process's arguments; pass it through 'env' instead");
    }
  }
  if (u.cwd.find("${") != std::string::npos) throw ConfigError(path + ".cwd must not carry a secret");
  if (auto h = s["headers"]) {
    if (is_tcp) {
      throw ConfigError(path + ".headers: a tcp:// server speaks newline-delimited JSON-RPC over a "
                        "bare socket, with no headers or environment to carry a credential; "
                        "serve it over http(s):// or stdio: to inject one");
    }
    if (is_stdio) {
      throw ConfigError(path + ".headers apply to http(s):// servers; give a stdio: server its "
                        "credentials through 'env'");
    }
    if (!h.IsMap()) throw ConfigError(path + ".headers must be a map of Header-Name: value");
    static const std::vector<std::string> kReserved{
        "host", "content-length", "content-type", "accept", "transfer-encoding", "connection",
        "upgrade", "mcp-session-id", "mcp-protocol-version", "last-event-id", "te", "trailer"};
    for (const auto& kv : h) {
      const std::string name = kv.first.as<std::string>();
      const std::string hpath = path + ".headers." + name;
      if (name.empty() || !std::all_of(name.begin(), name.end(), is_token_char)) {
        throw ConfigError(hpath + ": '" + name + "' is not a valid HTTP header name");
      }
      std::string lower = name;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (std::find(kReserved.begin(), kReserved.end(), lower) != kReserved.end()) {
        throw ConfigError(hpath + ": mcp-tunnel sets " + name + " itself");
      }
      const std::string value = read_string(kv.second, hpath);
      if (value.find_first_of("\r\n") != std::string::npos) {
        throw ConfigError(hpath + " must not contain a line break");
      }
      add_refs(u, secrets::parse_template(value, hpath));
      u.headers.emplace_back(name, value);
    }
  }
  for (const auto& [k, v] : u.env) add_refs(u, secrets::parse_template(v, path + ".env." + k));
  if (auto a = s["agent_credentials"]) {
    if (!a.IsSequence()) throw ConfigError(path + ".agent_credentials must be a list of globs");
    for (size_t i = 0; i < a.size(); ++i) {
      u.agent_credentials.push_back(
          read_string(a[i], path + ".agent_credentials[" + std::to_string(i) + "]"));
    }
  }
  if (auto ic = s["inventory_credential"]) {
    u.inventory_credential = read_string(ic, path + ".inventory_credential");
    if (!secrets::is_valid_secret_name(u.inventory_credential)) {
      throw ConfigError(path + ".inventory_credential must be a secret name of [A-Za-z0-9_.-]");
    }
  }
  if (u.uses_agent_secret && u.agent_credentials.empty()) {
    throw ConfigError(path + " uses ${agent_secret} but has no 'agent_credentials': list the "
                      "globs a per-agent credential must match (e.g. [\"crm-*\"])");
  }
  if (!u.uses_agent_secret && (!u.agent_credentials.empty() || !u.inventory_credential.empty())) {
    throw ConfigError(path + ": agent_credentials and inventory_credential apply only to a "
                      "server whose headers or env use ${agent_secret}");
  }
  if (!u.inventory_credential.empty() &&
      std::find(u.credentials.begin(), u.credentials.end(), u.inventory_credential) ==
          u.credentials.end()) {
    u.credentials.push_back(u.inventory_credential);
  }
}

}  // namespace

TunnelConfig parse_tunnel_config(const std::string& yaml_text, const std::string& origin) {
  TunnelConfig c;
  YAML::Node root = load_yaml_string(yaml_text, origin);
  if (!root || root.IsNull()) return c;
  expect_keys(root, "", {"name", "secrets", "servers"});
  if (auto sec = root["secrets"]) c.secrets = secrets::parse_sources(sec, "secrets");
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
                  {"name", "url", "headers", "args", "env", "cwd", "ca_file",
                   "agent_credentials", "inventory_credential", "connect_timeout",
                   "request_timeout", "max_message", "max_processes"});
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
      check_credentials(s, u, path);
      if (auto ca = s["ca_file"]) {
        if (u.url.rfind("https://", 0) != 0) {
          throw ConfigError(path + ".ca_file applies only to https:// servers");
        }
        u.ca_file = read_string(ca, path + ".ca_file");
      }
      if (auto t = s["connect_timeout"]) u.connect_timeout = read_duration(t, path + ".connect_timeout");
      if (auto t = s["request_timeout"]) u.request_timeout = read_duration(t, path + ".request_timeout");
      if (auto m = s["max_message"]) u.max_message = read_byte_size(m, path + ".max_message");
      if (auto m = s["max_processes"]) {
        if (u.url.rfind("stdio:", 0) != 0) {
          throw ConfigError(path + ".max_processes applies to stdio: servers only");
        }
        u.max_processes = read_uint(m, path + ".max_processes");
      }
      c.servers.push_back(std::move(u));
    }
  }
  return c;
}

TunnelConfig load_tunnel_config(const std::string& path) {
  return parse_tunnel_config(YAML::Dump(load_yaml_file(path)), path);
}

}  // namespace airlock::tunnel
