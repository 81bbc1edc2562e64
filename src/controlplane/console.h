// Console: the web console at `/`. Its pages (console/ in the source tree) are compiled into
// airlockd and served with a strict Content-Security-Policy; nothing is fetched from anywhere
// else. An operator signs in with the admin token and gets a server-side session: an HttpOnly,
// SameSite=Strict cookie, and a CSRF token that every change must carry in X-CSRF-Token. The
// pages read and change everything through the /v1 API, as the CLI does; this class adds what
// only the console needs: sign-in, checking a sandbox.yaml as the agent would (errors at the
// line), and filling in the deployment files and commands a new sandbox or tunnel is shown.
// Owned by ControlPlane; runs on airlockd's io thread; not thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/http_server.h"
#include "controlplane/audit_chain.h"
#include "controlplane/config.h"
#include "controlplane/routes.h"
#include "controlplane/store.h"

namespace airlock::controlplane {

// How airlockd's connectors are told to trust it, for the commands the console shows.
struct ConnectorTrust {
  std::string ca_pem;      // airlockd's own CA (self-managed certificates); empty otherwise
  std::string pin_sha256;  // its fingerprint, for --pin-sha256
};

class Console {
 public:
  using Audit = std::function<void(AuditRecord)>;

  Console(const AirlockdConfig& config, Store& store, Audit audit);

  // Called once the listener is bound: the URL operators reach airlockd at, and how
  // connectors verify it.
  void set_endpoint(std::string url, ConnectorTrust trust);
  void add_routes(RouteTable& routes);

  enum class SessionCheck {
    kNone,       // no session cookie, or an unknown or expired one
    kValid,      // signed in (and, for a change, the CSRF token matches)
    kBadCsrf,    // signed in, but a change came without the session's CSRF token
    kBadOrigin,  // signed in, but the request came from another site
  };
  // Whether `req` carries a console session that may do what it asks; `change`: not a GET.
  SessionCheck check_session(const HttpRequest& req, bool change);

  size_t session_count() const { return sessions_.size(); }

 private:
  struct Session {
    std::string csrf;
    std::chrono::steady_clock::time_point expires;
  };
  HttpResponse asset(const std::string& path) const;
  HttpResponse sign_in(const HttpRequest& req);
  HttpResponse session_state(const HttpRequest& req);
  HttpResponse sign_out(const HttpRequest& req);
  HttpResponse check_sandbox_config(const HttpRequest& req) const;
  HttpResponse check_tunnel_config(const HttpRequest& req) const;
  HttpResponse render_deployment(const HttpRequest& req) const;
  bool same_origin(const HttpRequest& req) const;
  std::string cookie_session(const HttpRequest& req) const;

  const AirlockdConfig& config_;
  Store& store_;
  Audit audit_;
  std::string url_;
  ConnectorTrust trust_;
  std::map<std::string, Session> sessions_;
};

// Security headers every console answer carries (CSP, framing, sniffing, referrer).
void add_console_headers(HttpResponse& r);

// The deployment file for a new sandbox or tunnel (`kind`), from its template in deploy/ with
// the token, the endpoint, airlockd's CA and (when given) the sandbox.yaml / tunnel.yaml
// filled in. Pure text work, for tests.
std::string fill_deployment(std::string_view tmpl, const std::string& kind,
                            const std::string& token, const std::string& endpoint,
                            const std::string& ca_pem, const std::string& config_yaml);

// The files of console/ and the deployment templates, compiled in (console_assets.cc is
// generated at build time).
struct EmbeddedFile {
  std::string_view path;  // "index.html", "deploy/sandbox-deployment.yaml"
  std::string_view data;
};
const std::vector<EmbeddedFile>& embedded_files();

}  // namespace airlock::controlplane
