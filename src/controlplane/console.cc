#include "controlplane/console.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <regex>
#include <sstream>

#include "common/config_util.h"
#include "common/token.h"
#include "controlplane/access.h"
#include "sandbox/config.h"
#include "tunnel/config.h"

namespace airlock::controlplane {
namespace json = boost::json;

namespace {

constexpr std::string_view kCookie = "airlock_session";
constexpr auto kSessionLifetime = std::chrono::hours(12);
constexpr size_t kMaxSessions = 1000;

std::string_view content_type_of(std::string_view path) {
  auto ends = [&](std::string_view ext) {
    return path.size() >= ext.size() && path.substr(path.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".yaml")) return "text/yaml; charset=utf-8";
  return "application/octet-stream";
}

const EmbeddedFile* find_file(std::string_view path) {
  for (const auto& f : embedded_files()) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

HttpResponse error_with_line(int status, std::string_view code, const std::string& message) {
  json::object e{{"code", code}, {"message", message}};
  static const std::regex kLine(R"(\(line (\d+), column (\d+)\))");
  std::smatch m;
  if (std::regex_search(message, m, kLine)) {
    e["line"] = std::stoi(m[1].str());
    e["column"] = std::stoi(m[2].str());
  }
  return HttpResponse::json(status, json::serialize(json::object{{"error", std::move(e)}}));
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Replaces the lines of the block that follows the line ending in `header` (its lines indented
// deeper than the header) with `content`, indented by `indent`.
std::string replace_block(const std::string& text, std::string_view header,
                          const std::string& content, const std::string& indent) {
  std::istringstream in(text);
  std::string out, line;
  bool skipping = false;
  size_t header_indent = 0;
  while (std::getline(in, line)) {
    if (skipping) {
      const size_t lead = line.find_first_not_of(' ');
      if (line.empty() || (lead != std::string::npos && lead > header_indent)) continue;
      skipping = false;
    }
    out += line + "\n";
    const size_t at = line.find(header);
    if (at != std::string::npos && at + header.size() == line.size()) {
      skipping = true;
      header_indent = line.find_first_not_of(' ');
      std::istringstream c(content);
      for (std::string l; std::getline(c, l);) out += (l.empty() ? "" : indent + l) + "\n";
    }
  }
  return out;
}

void replace_all(std::string& s, std::string_view from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

}  // namespace

void add_console_headers(HttpResponse& r) {
  // Every script and style is a file airlockd serves; nothing inline, nothing from elsewhere.
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; style-src 'self'; "
                         "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                         "frame-ancestors 'none'; base-uri 'none'");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cache-Control", "no-store");
}

std::string fill_deployment(std::string_view tmpl, const std::string& kind,
                            const std::string& token, const std::string& endpoint,
                            const std::string& ca_pem, const std::string& config_yaml) {
  std::string out(tmpl);
  replace_all(out, "REPLACE-with-the-token-from-airlock-" + kind + "-create", token);
  replace_all(out, "wss://airlock.example.com:8443/v1/connect", endpoint);
  if (!ca_pem.empty()) out = replace_block(out, "airlockd-ca.pem: |", ca_pem, "    ");
  if (!config_yaml.empty()) {
    out = replace_block(out, kind == "sandbox" ? "sandbox.yaml: |" : "tunnel.yaml: |", config_yaml,
                        "    ");
  }
  return out;
}

Console::Console(const AirlockdConfig& config, Store& store, Audit audit)
    : config_(config), store_(store), audit_(std::move(audit)) {}

void Console::set_endpoint(std::string url, ConnectorTrust trust) {
  url_ = std::move(url);
  trust_ = std::move(trust);
}

void Console::add_routes(RouteTable& routes) {
  routes.add(
      "GET", "/", Access::kPublic,
      immediate([this](const HttpRequest&, const RouteContext&) { return asset("index.html"); }));
  routes.add(
      "GET", "/assets/*", Access::kPublic,
      immediate([this](const HttpRequest&, const RouteContext& c) { return asset(c.param("*")); }));
  routes.add("POST", "/console/session", Access::kPublic,
             immediate([this](const HttpRequest& r, const RouteContext&) { return sign_in(r); }));
  routes.add(
      "GET", "/console/session", Access::kPublic,
      immediate([this](const HttpRequest& r, const RouteContext&) { return session_state(r); }));
  routes.add("DELETE", "/console/session", Access::kPublic,
             immediate([this](const HttpRequest& r, const RouteContext&) { return sign_out(r); }));
  routes.add("POST", "/v1/console/check-sandbox-config", Access::kAdmin,
             immediate([this](const HttpRequest& r, const RouteContext&) {
               return check_sandbox_config(r);
             }));
  routes.add("POST", "/v1/console/check-tunnel-config", Access::kAdmin,
             immediate([this](const HttpRequest& r, const RouteContext&) {
               return check_tunnel_config(r);
             }));
  routes.add("POST", "/v1/console/deployment", Access::kAdmin,
             immediate([this](const HttpRequest& r, const RouteContext&) {
               return render_deployment(r);
             }));
}

HttpResponse Console::asset(const std::string& path) const {
  const EmbeddedFile* f = path.rfind("deploy/", 0) == 0 ? nullptr : find_file(path);
  HttpResponse r;
  if (!f) {
    r = HttpResponse::error(404, "not_found", "no console file '" + path + "'");
  } else {
    r.status = 200;
    r.content_type = std::string(content_type_of(path));
    r.body = std::string(f->data);
  }
  add_console_headers(r);
  return r;
}

std::string Console::cookie_session(const HttpRequest& req) const {
  const std::string cookies = req.header("cookie");
  size_t at = 0;
  while (at < cookies.size()) {
    size_t end = cookies.find(';', at);
    if (end == std::string::npos) end = cookies.size();
    std::string_view part(cookies.data() + at, end - at);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > kCookie.size() && part.substr(0, kCookie.size()) == kCookie &&
        part[kCookie.size()] == '=') {
      return std::string(part.substr(kCookie.size() + 1));
    }
    at = end + 1;
  }
  return {};
}

bool Console::same_origin(const HttpRequest& req) const {
  // Browsers send Origin on every POST, PUT, PATCH and DELETE; it must be this server's, as the
  // browser reached it (its Host header).
  const std::string origin = req.header("origin");
  if (origin.empty()) {
    const std::string site = req.header("sec-fetch-site");
    return site.empty() || site == "same-origin";
  }
  const std::string host = req.header("host");
  const std::string scheme = config_.tls.plaintext ? "http://" : "https://";
  return !host.empty() && origin == scheme + host;
}

Console::SessionCheck Console::check_session(const HttpRequest& req, bool change) {
  const std::string id = cookie_session(req);
  if (id.empty()) return SessionCheck::kNone;
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return SessionCheck::kNone;
  if (std::chrono::steady_clock::now() > it->second.expires) {
    sessions_.erase(it);
    return SessionCheck::kNone;
  }
  if (!change) return SessionCheck::kValid;
  if (!same_origin(req)) return SessionCheck::kBadOrigin;
  const std::string csrf = req.header("x-csrf-token");
  if (csrf.empty() || csrf != it->second.csrf) return SessionCheck::kBadCsrf;
  return SessionCheck::kValid;
}

HttpResponse Console::sign_in(const HttpRequest& req) {
  // JSON only: a form on another site cannot send it without the browser asking first, and
  // its Origin must be this server's.
  const std::string type = req.header("content-type");
  if (type.rfind("application/json", 0) != 0 || !same_origin(req)) {
    audit_(auth_failure(req, "console sign-in", "not a same-origin JSON request"));
    return HttpResponse::error(403, "cross_site_refused",
                               "sign in from the console's own page (a same-origin JSON POST)");
  }
  boost::system::error_code ec;
  auto v = json::parse(req.body, ec);
  std::string token;
  if (!ec && v.is_object()) {
    if (auto* t = v.as_object().if_contains("token"); t && t->is_string()) token = t->as_string();
  }
  // The same check as a Bearer header, on the token the form carried.
  HttpRequest as_bearer;
  as_bearer.headers.emplace_back("authorization", "Bearer " + token);
  auto rec = check_bearer(store_, as_bearer);
  if (!rec || rec->kind != "admin") {
    AuditRecord failure = auth_failure(req, "console sign-in", "not the admin token");
    if (auto id = token_id(token)) failure.detail["token_id"] = *id;
    audit_(std::move(failure));
    return HttpResponse::error(401, "unauthorized",
                               "that is not the admin token (it is in airlockd's "
                               "state_dir/admin.token)");
  }
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(sessions_, [&](const auto& kv) { return now > kv.second.expires; });
  if (sessions_.size() >= kMaxSessions) sessions_.erase(sessions_.begin());
  const std::string id = random_hex(32);
  const std::string csrf = random_hex(16);
  sessions_[id] = Session{csrf, now + kSessionLifetime};
  AuditRecord signed_in;
  signed_in.type = AuditType::kAdmin;
  signed_in.actor = "console";
  signed_in.method = "POST /console/session";
  signed_in.target = "console session";
  signed_in.remote = req.remote;
  signed_in.outcome = "ok";
  audit_(std::move(signed_in));
  auto r =
      HttpResponse::json(200, json::serialize(json::object{{"signed_in", true}, {"csrf", csrf}}));
  std::string cookie = std::string(kCookie) + "=" + id +
                       "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                       std::to_string(std::chrono::seconds(kSessionLifetime).count());
  if (!config_.tls.plaintext) cookie += "; Secure";
  r.headers.emplace_back("Set-Cookie", cookie);
  add_console_headers(r);
  return r;
}

HttpResponse Console::session_state(const HttpRequest& req) {
  json::object o{{"signed_in", false}};
  if (check_session(req, false) == SessionCheck::kValid) {
    o["signed_in"] = true;
    o["csrf"] = sessions_.at(cookie_session(req)).csrf;
  }
  auto r = HttpResponse::json(200, json::serialize(o));
  add_console_headers(r);
  return r;
}

HttpResponse Console::sign_out(const HttpRequest& req) {
  const auto check = check_session(req, true);
  if (check == SessionCheck::kValid) sessions_.erase(cookie_session(req));
  auto r = check == SessionCheck::kValid || check == SessionCheck::kNone
               ? HttpResponse::json(200, R"({"signed_in":false})")
               : HttpResponse::error(403, "csrf", "sign out from the console's own page");
  r.headers.emplace_back("Set-Cookie",
                         std::string(kCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
  add_console_headers(r);
  return r;
}

HttpResponse Console::check_sandbox_config(const HttpRequest& req) const {
  if (req.body.empty()) {
    return error_with_line(400, "invalid_config", "the sandbox.yaml is empty");
  }
  try {
    const auto c = sandbox::parse_sandbox_config(req.body, "sandbox.yaml");
    return HttpResponse::json(200, json::serialize(json::object{{"valid", true},
                                                                {"name", c.name},
                                                                {"image", c.image},
                                                                {"max_sessions", c.max_sessions}}));
  } catch (const std::exception& e) {
    return error_with_line(400, "invalid_config", e.what());
  }
}

HttpResponse Console::check_tunnel_config(const HttpRequest& req) const {
  try {
    const auto c = tunnel::parse_tunnel_config(req.body, "tunnel.yaml");
    return HttpResponse::json(
        200, json::serialize(json::object{{"valid", true}, {"servers", c.servers.size()}}));
  } catch (const std::exception& e) {
    return error_with_line(400, "invalid_config", e.what());
  }
}

HttpResponse Console::render_deployment(const HttpRequest& req) const {
  boost::system::error_code ec;
  auto v = json::parse(req.body, ec);
  if (ec || !v.is_object()) {
    return HttpResponse::error(400, "bad_request",
                               "the body must be {\"kind\", \"name\", \"token\", \"config\", "
                               "\"endpoint\"}");
  }
  const auto& o = v.as_object();
  auto field = [&](const char* k) {
    auto* f = o.if_contains(k);
    return f && f->is_string() ? std::string(f->as_string()) : std::string();
  };
  const std::string kind = field("kind"), name = field("name"), token = field("token");
  std::string config = field("config"), endpoint = field("endpoint");
  if (kind != "sandbox" && kind != "tunnel") {
    return HttpResponse::error(400, "bad_request", "kind must be 'sandbox' or 'tunnel'");
  }
  if (!proto::is_valid_resource_name(name) || !store_.get_resource(kind, name)) {
    return HttpResponse::error(404, "not_found", "no " + kind + " named '" + name + "'");
  }
  if (!config.empty()) {
    try {
      if (kind == "sandbox") {
        (void)sandbox::parse_sandbox_config(config, "sandbox.yaml");
      } else {
        (void)tunnel::parse_tunnel_config(config, "tunnel.yaml");
      }
    } catch (const std::exception& e) {
      return error_with_line(400, "invalid_config", e.what());
    }
  }
  if (endpoint.empty()) {
    endpoint = url_;
    if (endpoint.rfind("https://", 0) == 0) endpoint = "wss://" + endpoint.substr(8);
    if (endpoint.rfind("http://", 0) == 0) endpoint = "ws://" + endpoint.substr(7);
    endpoint += "/v1/connect";
  }
  if (endpoint.rfind("wss://", 0) != 0 && endpoint.rfind("ws://", 0) != 0) {
    return HttpResponse::error(400, "bad_request",
                               "endpoint must be a wss:// (or ws://) URL ending in /v1/connect");
  }
  const EmbeddedFile* tmpl = find_file(kind == "sandbox" ? "deploy/sandbox-deployment.yaml"
                                                         : "deploy/mcp-tunnel-deployment.yaml");
  std::string command = "AIRLOCK_TOKEN=" + shell_quote(token.empty() ? "<token>" : token) + " " +
                        (kind == "sandbox" ? "sandbox-agent" : "mcp-tunnel") +
                        " start --endpoint " + endpoint;
  if (!trust_.pin_sha256.empty()) command += " --pin-sha256 " + trust_.pin_sha256;
  command += kind == "sandbox" ? " --config sandbox.yaml" : " --config tunnel.yaml";
  if (kind == "tunnel") command += " --allowed-credentials \"*\"";
  json::object out{{"command", command}};
  if (tmpl) {
    out["kubernetes"] = fill_deployment(tmpl->data, kind, token.empty() ? "<token>" : token,
                                        endpoint, trust_.ca_pem, config);
  }
  return HttpResponse::json(200, json::serialize(out));
}

}  // namespace airlock::controlplane
