#include "controlplane/admin_cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "common/config_util.h"
#include "common/http_client.h"
#include "controlplane/audit_chain.h"
#include "sandbox/config.h"

namespace airlock::cli {
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

struct Globals {
  std::string server, ca_file, pin, admin_token_file, state_dir;
  bool insecure = false;
  bool json_output = false;
};

// Fills the connection settings from flags, then the environment, then the state directory.
bool resolve(Globals& g, HttpClientOptions& o, std::string& error) {
  if (g.state_dir.empty()) g.state_dir = env_or("AIRLOCK_STATE_DIR", "./airlockd-state");
  if (g.server.empty()) g.server = env_or("AIRLOCK_SERVER", "");
  if (g.server.empty() && fs::exists(g.state_dir + "/airlockd.url")) {
    g.server = read_first_line(g.state_dir + "/airlockd.url");
  }
  if (g.server.empty()) {
    error = "no server: pass --server https://HOST:PORT, set AIRLOCK_SERVER, or point "
            "--state-dir at airlockd's state directory";
    return false;
  }
  if (g.ca_file.empty()) g.ca_file = env_or("AIRLOCK_CA_FILE", "");
  if (g.ca_file.empty() && g.pin.empty() && !g.insecure && fs::exists(g.state_dir + "/ca.pem")) {
    g.ca_file = g.state_dir + "/ca.pem";
  }
  std::string token = env_or("AIRLOCK_ADMIN_TOKEN", "");
  if (!g.admin_token_file.empty()) {
    token = read_first_line(g.admin_token_file);
  } else if (token.empty() && fs::exists(g.state_dir + "/admin.token")) {
    token = read_first_line(g.state_dir + "/admin.token");
  }
  if (token.empty()) {
    error = "no admin token: pass --admin-token-file, set AIRLOCK_ADMIN_TOKEN, or point "
            "--state-dir at airlockd's state directory (it holds admin.token)";
    return false;
  }
  o.base_url = g.server;
  o.bearer = token;
  o.tls = {.ca_file = g.ca_file, .pin_sha256 = g.pin, .insecure_skip_verify = g.insecure};
  return true;
}

// Prints the server's error and returns the exit code for it.
int report(const HttpCallResult& r) {
  if (r.status == 0) {
    std::cerr << "airlock: " << r.error << "\n";
    return 1;
  }
  std::string message = r.body;
  json::error_code ec;
  auto v = json::parse(r.body, ec);
  if (!ec && v.is_object()) {
    if (auto* e = v.as_object().if_contains("error"); e && e->is_object()) {
      if (auto* m = e->as_object().if_contains("message"); m && m->is_string()) {
        message = std::string(m->as_string());
      }
    }
  }
  std::cerr << "airlock: server answered " << r.status << ": " << message << "\n";
  return 1;
}

std::string str(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (!v) return "";
  if (v->is_string()) return std::string(v->as_string());
  return json::serialize(*v);
}

void print_table(const json::array& rows) {
  std::cout << std::left << std::setw(9) << "KIND" << std::setw(24) << "NAME" << std::setw(14)
            << "STATUS" << std::setw(7) << "LINKS" << std::setw(22) << "VERSION" << std::setw(26)
            << "LAST SEEN" << "REMOTE\n";
  for (const auto& row : rows) {
    const auto& o = row.as_object();
    std::cout << std::left << std::setw(9) << str(o, "kind") << std::setw(24) << str(o, "name")
              << std::setw(14) << str(o, "status") << std::setw(7) << str(o, "connections")
              << std::setw(22) << str(o, "version") << std::setw(26)
              << (str(o, "last_seen").empty() ? "never" : str(o, "last_seen"))
              << str(o, "remote_address") << "\n";
    if (!str(o, "description").empty()) {
      std::cout << "         description " << str(o, "description") << "\n";
    }
    if (o.contains("image")) {
      // A sandbox: what it runs, and its sessions per replica.
      const auto& res = o.at("resources").as_object();
      std::string allowed;
      for (const auto& a : o.at("allowed_outbound").as_array()) {
        allowed += (allowed.empty() ? "" : ", ") + std::string(a.as_string());
      }
      std::cout << "         image " << str(o, "image")
                << (str(o, "image_digest").empty() ? "" : " (" + str(o, "image_digest") + ")")
                << "  cpu "
                << (str(res, "cpu").empty() ? "unlimited" : str(res, "cpu")) << "  memory "
                << (str(res, "memory").empty() ? "unlimited" : str(res, "memory")) << "  pids "
                << str(res, "pids") << "\n         allowed_outbound "
                << (allowed.empty() ? "(none)" : allowed) << "\n         sessions "
                << str(o, "sessions_in_use") << "/" << str(o, "max_sessions") << " in use";
      const auto& replicas = o.at("replicas").as_array();
      if (replicas.size() > 1) std::cout << " over " << replicas.size() << " replicas";
      std::cout << "\n";
      for (const auto& rep : replicas) {
        const auto& r = rep.as_object();
        std::cout << "           replica " << str(r, "instance") << "  " << str(r, "remote_address")
                  << "  sessions " << str(r, "sessions_in_use") << "/" << str(r, "max_sessions")
                  << "\n";
      }
    }
  }
}

// A query string from the non-empty values.
std::string query_of(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (v.empty()) continue;
    q += (q.empty() ? "?" : "&") + k + "=";
    for (unsigned char c : v) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':' || c == '*' ||
          c == '/') {
        q += static_cast<char>(c);
      } else {
        char hex[4];
        std::snprintf(hex, sizeof hex, "%%%02X", c);
        q += hex;
      }
    }
  }
  return q;
}

// One audit record on one line.
std::string audit_line(const json::object& r) {
  std::ostringstream o;
  o << std::left << std::setw(8) << str(r, "seq") << std::setw(25) << str(r, "at") << std::setw(16)
    << str(r, "type") << std::setw(11) << str(r, "outcome") << std::setw(16)
    << (str(r, "actor").empty() ? "-" : str(r, "actor")) << str(r, "method");
  if (!str(r, "target").empty()) o << " " << str(r, "target");
  if (!str(r, "connector").empty()) {
    o << "  via " << str(r, "connector");
    if (!str(r, "server").empty()) o << "/" << str(r, "server");
  }
  if (str(r, "type") == "call" || str(r, "type") == "server_request") {
    o << "  " << str(r, "duration_ms") << " ms  " << str(r, "bytes_in") << "B in "
      << str(r, "bytes_out") << "B out";
  }
  if (!str(r, "error_class").empty()) o << "  [" << str(r, "error_class") << "]";
  if (str(r, "redactions") != "0") o << "  redacted " << str(r, "redactions");
  if (!str(r, "remote").empty()) o << "  from " << str(r, "remote");
  const auto* d = r.if_contains("detail");
  if (d && d->is_object() && !d->as_object().empty()) o << "  " << json::serialize(*d);
  return o.str();
}

// Prints a chain verdict (GET /v1/audit/verify's answer); the exit code: 0 intact, 1 broken.
int print_verdict(const json::object& o, bool as_json) {
  const auto* intact = o.if_contains("intact");
  const bool ok = intact && intact->is_bool() && intact->as_bool();
  if (as_json) {
    std::cout << json::serialize(o) << "\n";
  } else if (ok) {
    std::cout << "intact: " << str(o, "records") << " record(s); head " << str(o, "head_seq") << " "
              << str(o, "head_hash") << "\n";
  } else {
    std::cout << "BROKEN at record " << str(o, "bad_seq") << " (" << str(o, "problem")
              << "): " << str(o, "message") << "\n";
  }
  return ok ? 0 : 1;
}

// The contents of `file`; false (having said why) when it cannot be read.
bool read_whole(const std::string& file, std::string& out) {
  std::ifstream in(file);
  if (!in) {
    std::cerr << "airlock: cannot read " << file << "\n";
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

// `airlock audit verify --file`: an export checked here, without airlockd.
int verify_export(const std::string& file, bool as_json) {
  std::ifstream in(file);
  if (!in) {
    std::cerr << "airlock: cannot read " << file << "\n";
    return 2;
  }
  std::vector<controlplane::AuditRecord> records;
  size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    json::error_code ec;
    auto v = json::parse(line, ec);
    controlplane::AuditRecord r;
    std::string error;
    if (ec || !v.is_object() || !controlplane::from_json(v.as_object(), r, error)) {
      std::cerr << "airlock: " << file << ":" << line_no << ": not an audit record"
                << (error.empty() ? "" : ": " + error) << "\n";
      return 2;
    }
    records.push_back(std::move(r));
  }
  return print_verdict(controlplane::to_json(controlplane::verify_chain(records)), as_json);
}

std::string endpoint_hint(const std::string& server) {
  std::string host = server;
  if (host.rfind("https://", 0) == 0) return "wss://" + host.substr(8) + "/v1/connect";
  if (host.rfind("http://", 0) == 0) return "ws://" + host.substr(7) + "/v1/connect";
  return host;
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"airlock — administer an Airlock control plane (airlockd)"};
  app.require_subcommand(1);
  Globals g;
  app.add_option("--server", g.server, "airlockd URL, e.g. https://airlock.example.com:8443 "
                                       "(env AIRLOCK_SERVER; default from --state-dir)");
  app.add_option("--ca-file", g.ca_file, "CA to verify airlockd (env AIRLOCK_CA_FILE)");
  app.add_option("--pin-sha256", g.pin, "fingerprint of airlockd's CA or certificate");
  app.add_flag("--insecure-skip-tls-verify", g.insecure, "do not verify airlockd (experiments)");
  app.add_option("--admin-token-file", g.admin_token_file,
                 "file with the admin token (env AIRLOCK_ADMIN_TOKEN)");
  app.add_option("--state-dir", g.state_dir,
                 "airlockd's state directory, when on the same machine (env AIRLOCK_STATE_DIR; "
                 "default ./airlockd-state)");
  app.add_flag("--json", g.json_output, "print the server's JSON answer");
  app.set_version_flag("--version", std::string("airlock ") + AIRLOCK_VERSION);

  std::string method, path, body;
  std::string kind_plural, action, name, sandbox_file, description;
  auto* status = app.add_subcommand("status", "show every tunnel and sandbox with its status");
  status->callback([&] {
    method = "GET";
    path = "/v1/status";
  });
  for (const std::string kind : {"tunnel", "sandbox"}) {
    const std::string plural = kind + (kind == "sandbox" ? "es" : "s");
    auto* k = app.add_subcommand(kind, "manage " + plural);
    k->require_subcommand(1);
    auto add = [&, k, kind, plural](const std::string& verb, const std::string& help,
                                    bool needs_name) {
      auto* c = k->add_subcommand(verb, help);
      if (needs_name) c->add_option("NAME", name, kind + " name")->required();
      c->callback([&, plural, verb] {
        kind_plural = plural;
        action = verb;
      });
    };
    add("create", "register a " + kind + " and mint its token (printed once)", true);
    if (kind == "sandbox") {
      k->get_subcommand("create")
          ->add_option("-f,--file", sandbox_file,
                       "sandbox.yaml to check first, as sandbox-agent will (errors name the key)")
          ->check(CLI::ExistingFile);
    }
    add("token", "mint an additional token for a " + kind + " (for rotation)", true);
    add("revoke", "revoke every token of a " + kind + " and close its links within a second",
        true);
    add("show", "show one " + kind, true);
    add("list", "list " + plural + " with their status", false);
    add("update", "change a " + kind + "'s description", true);
    k->get_subcommand("update")
        ->add_option("--description", description, "what it is for (shown in the console)")
        ->required();
    add("delete", "revoke every token of a " + kind + ", close its links and forget it", true);
    k->get_subcommand("create")->add_option("--description", description,
                                            "what it is for (shown in the console)");
  }
  std::string mode;  // which of the commands below ran, for printing the answer
  std::string tools_file, tool_globs;
  auto* tools = app.add_subcommand("tools", "manage tool bindings (what agents can call)");
  tools->require_subcommand(1);
  auto* apply = tools->add_subcommand(
      "apply", "replace every binding with those in a tools.yaml file (refused on a name "
               "collision, with both sources named)");
  apply->add_option("-f,--file", tools_file, "tools.yaml: 'tools: [{name, mcp_tunnel, server} or {name, sandbox}]'")
      ->required();
  apply->callback([&] { mode = "tools-apply"; });
  tools->add_subcommand("list", "list bindings with the tools they expose and their status")
      ->callback([&] { mode = "tools-list"; });
  auto* tshow = tools->add_subcommand("show", "show one binding, its tools and availability");
  tshow->add_option("NAME", name, "binding name")->required();
  tshow->callback([&] { mode = "tools-show"; });
  auto* tset = tools->add_subcommand(
      "set", "create or replace one binding from a YAML (or JSON) file holding that binding");
  tset->add_option("NAME", name, "binding name")->required();
  tset->add_option("-f,--file", tools_file, "the binding: {mcp_tunnel, server} or {sandbox}")
      ->required();
  tset->callback([&] { mode = "tools-set"; });
  auto* tdel = tools->add_subcommand("delete", "remove one binding");
  tdel->add_option("NAME", name, "binding name")->required();
  tdel->callback([&] { mode = "tools-delete"; });
  auto* keys = app.add_subcommand("agent-key", "manage agent keys (how agents authenticate to /mcp)");
  keys->require_subcommand(1);
  auto* kc = keys->add_subcommand("create", "create an agent and mint its key (printed once)");
  kc->add_option("NAME", name, "agent name")->required();
  kc->add_option("--tools", tool_globs,
                 "comma-separated globs of the tools (and prompts) the key may use, e.g. "
                 "'crm_*,fetch-sales-data' or '*'")
      ->required();
  kc->callback([&] { mode = "key-create"; });
  auto* kr = keys->add_subcommand("rotate", "mint an additional key for an agent");
  kr->add_option("NAME", name, "agent name")->required();
  kr->callback([&] { mode = "key-rotate"; });
  auto* kv = keys->add_subcommand("revoke", "revoke every key of an agent");
  kv->add_option("NAME", name, "agent name")->required();
  kv->callback([&] { mode = "key-revoke"; });
  keys->add_subcommand("list", "list agents and their tool scopes")->callback([&] {
    mode = "key-list";
  });
  auto* ks = keys->add_subcommand("show", "show one agent and its tool scope");
  ks->add_option("NAME", name, "agent name")->required();
  ks->callback([&] { mode = "key-show"; });
  auto* ku = keys->add_subcommand("update", "change the tools an agent's keys may use");
  ku->add_option("NAME", name, "agent name")->required();
  ku->add_option("--tools", tool_globs, "comma-separated globs, e.g. 'crm_*' or '*'")->required();
  ku->callback([&] { mode = "key-update"; });
  auto* kd = keys->add_subcommand("delete", "revoke every key of an agent and forget it");
  kd->add_option("NAME", name, "agent name")->required();
  kd->callback([&] { mode = "key-delete"; });

  auto* conns = app.add_subcommand("connections", "live connector links");
  conns->require_subcommand(1);
  conns->add_subcommand("list", "every live link: resource, replica, address, version, RTT")
      ->callback([&] { mode = "conn-list"; });
  auto* cclose = conns->add_subcommand(
      "close", "close one link (the connector dials again; revoke its token to keep it out)");
  cclose->add_option("ID", name, "connection id (from 'connections list')")->required();
  cclose->callback([&] { mode = "conn-close"; });

  std::string a_type, a_actor, a_target, a_outcome, a_session, a_since, a_until, a_file, a_out;
  size_t a_limit = 50;
  bool a_follow = false;
  auto* audit = app.add_subcommand("audit",
                                   "the audit log: every call, admin change and refused "
                                   "authentication, hash-chained");
  audit->require_subcommand(1);
  auto* tail = audit->add_subcommand("tail", "show the newest records, oldest first");
  auto filters = [&](CLI::App* c) {
    c->add_option("--type", a_type,
                  "call, server_request, admin, auth_failure, tool_refused, secret_redacted, gap");
    c->add_option("--actor", a_actor, "an agent name, or admin");
    c->add_option("--target", a_target, "a tool, prompt or resource URI");
    c->add_option("--outcome", a_outcome, "ok, tool_error, error, refused, declined, ...");
    c->add_option("--session", a_session, "an MCP session tag");
    c->add_option("--since", a_since, "records at or after this time (2026-11-27T14:00:00.000Z)");
    c->add_option("--until", a_until, "records at or before this time");
  };
  filters(tail);
  tail->add_option("-n,--limit", a_limit, "how many (default 50, at most 1000)");
  tail->add_flag("-f,--follow", a_follow,
                 "keep printing records as they are written (Ctrl-C ends)");
  tail->callback([&] { mode = "audit-tail"; });
  auto* verify = audit->add_subcommand(
      "verify",
      "check the hash chain; names the first edited, removed, inserted or reordered "
      "record (exit 1)");
  verify
      ->add_option("--file", a_file, "check an export (JSON Lines) here instead of asking airlockd")
      ->check(CLI::ExistingFile);
  verify->callback([&] { mode = "audit-verify"; });
  auto* exp = audit->add_subcommand("export", "every record (or a time range) as JSON Lines");
  exp->add_option("--since", a_since, "records at or after this time");
  exp->add_option("--until", a_until, "records at or before this time");
  exp->add_option("-o,--output", a_out, "write to this file instead of standard output");
  exp->callback([&] { mode = "audit-export"; });
  CLI11_PARSE(app, argc, argv);

  if (mode == "tools-apply") {
    if (!read_whole(tools_file, body)) return 2;
    method = "PUT";
    path = "/v1/tools";
  } else if (mode == "tools-list") {
    method = "GET";
    path = "/v1/tools";
  } else if (mode == "key-create") {
    json::array globs;
    std::stringstream ss(tool_globs);
    std::string glob;
    while (std::getline(ss, glob, ',')) {
      while (!glob.empty() && glob.front() == ' ') glob.erase(0, 1);
      while (!glob.empty() && glob.back() == ' ') glob.pop_back();
      if (!glob.empty()) globs.push_back(json::string(glob));
    }
    method = "POST";
    path = "/v1/agents";
    body = json::serialize(json::object{{"name", name}, {"tools", std::move(globs)}});
  } else if (mode == "key-rotate") {
    method = "POST";
    path = "/v1/agents/" + name + "/keys";
  } else if (mode == "key-revoke") {
    method = "POST";
    path = "/v1/agents/" + name + "/revoke";
  } else if (mode == "key-list") {
    method = "GET";
    path = "/v1/agents";
  } else if (mode == "key-show") {
    method = "GET";
    path = "/v1/agents/" + name;
  } else if (mode == "key-update") {
    json::array globs;
    std::stringstream ss(tool_globs);
    for (std::string glob; std::getline(ss, glob, ',');) {
      while (!glob.empty() && glob.front() == ' ') glob.erase(0, 1);
      while (!glob.empty() && glob.back() == ' ') glob.pop_back();
      if (!glob.empty()) globs.push_back(json::string(glob));
    }
    method = "PATCH";
    path = "/v1/agents/" + name;
    body = json::serialize(json::object{{"tools", std::move(globs)}});
  } else if (mode == "key-delete") {
    method = "DELETE";
    path = "/v1/agents/" + name;
  } else if (mode == "tools-show") {
    method = "GET";
    path = "/v1/tools/" + name;
  } else if (mode == "tools-set") {
    if (!read_whole(tools_file, body)) return 2;
    method = "PUT";
    path = "/v1/tools/" + name;
  } else if (mode == "tools-delete") {
    method = "DELETE";
    path = "/v1/tools/" + name;
  } else if (mode == "conn-list") {
    method = "GET";
    path = "/v1/connections";
  } else if (mode == "conn-close") {
    method = "DELETE";
    path = "/v1/connections/" + name;
  } else if (mode == "audit-verify") {
    if (!a_file.empty()) return verify_export(a_file, g.json_output);
    method = "GET";
    path = "/v1/audit/verify";
  } else if (mode == "audit-tail") {
    method = "GET";
    path = "/v1/audit" + query_of({{"type", a_type},
                                   {"actor", a_actor},
                                   {"target", a_target},
                                   {"outcome", a_outcome},
                                   {"session", a_session},
                                   {"since", a_since},
                                   {"until", a_until},
                                   {"limit", std::to_string(a_limit)}});
  } else if (mode == "audit-export") {
    method = "GET";
    path = "/v1/audit/export" + query_of({{"since", a_since}, {"until", a_until}});
  }

  if (!kind_plural.empty()) {
    const std::string base = "/v1/" + kind_plural;
    if (action == "create") {
      if (!sandbox_file.empty()) {
        // The file is checked before anything is created, the way the agent will read it.
        try {
          (void)sandbox::load_sandbox_config(sandbox_file);
        } catch (const std::exception& e) {
          std::cerr << "airlock: " << sandbox_file << ": " << e.what() << "\n";
          return 2;
        }
      }
      method = "POST";
      path = base;
      json::object o{{"name", name}};
      if (!description.empty()) o["description"] = description;
      body = json::serialize(o);
    } else if (action == "token") {
      method = "POST";
      path = base + "/" + name + "/tokens";
    } else if (action == "revoke") {
      method = "POST";
      path = base + "/" + name + "/revoke";
    } else if (action == "show") {
      method = "GET";
      path = base + "/" + name;
    } else if (action == "update") {
      method = "PATCH";
      path = base + "/" + name;
      body = json::serialize(json::object{{"description", description}});
    } else if (action == "delete") {
      method = "DELETE";
      path = base + "/" + name;
    } else {
      method = "GET";
      path = base;
    }
  }

  HttpClientOptions options;
  std::string error;
  if (!resolve(g, options, error)) {
    std::cerr << "airlock: " << error << "\n";
    return 2;
  }
  // Verifying or exporting reads the whole audit log: give it time (minutes for millions of
  // records) rather than the usual 10 s.
  if (mode == "audit-verify" || mode == "audit-export") options.timeout = std::chrono::minutes(30);
  HttpCallResult r;
  try {
    r = http_call(options, method, path, body);
  } catch (const std::exception& e) {
    std::cerr << "airlock: " << e.what() << "\n";
    return 2;
  }
  if (r.status < 200 || r.status >= 300) return report(r);
  if (mode == "audit-export") {
    if (a_out.empty()) {
      std::cout << r.body;
      return 0;
    }
    std::ofstream out(a_out, std::ios::trunc);
    out << r.body;
    if (!out) {
      std::cerr << "airlock: cannot write " << a_out << "\n";
      return 2;
    }
    std::cerr << "wrote " << std::count(r.body.begin(), r.body.end(), '\n') << " record(s) to "
              << a_out << "\n";
    return 0;
  }
  if (mode == "audit-verify") {
    json::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec || !v.is_object()) return report(r);
    return print_verdict(v.as_object(), g.json_output);
  }
  if (mode == "audit-tail") {
    // Newest first from the server; printed oldest first, then followed.
    int64_t last = 0;
    auto print_page = [&](const std::string& text, bool reverse) -> bool {
      json::error_code ec;
      auto v = json::parse(text, ec);
      if (ec || !v.is_object() || !v.as_object().contains("records")) return false;
      auto records = v.as_object().at("records").as_array();
      if (reverse) std::reverse(records.begin(), records.end());
      for (const auto& rec : records) {
        const auto& o = rec.as_object();
        std::cout << (g.json_output ? json::serialize(o) : audit_line(o)) << "\n";
        last = std::max<int64_t>(last, o.at("seq").to_number<int64_t>());
      }
      if (records.empty() && last == 0) last = v.as_object().at("head").to_number<int64_t>();
      std::cout.flush();
      return true;
    };
    if (!print_page(r.body, true)) return report(r);
    while (a_follow) {
      const std::string next = "/v1/audit" + query_of({{"type", a_type},
                                                       {"actor", a_actor},
                                                       {"target", a_target},
                                                       {"outcome", a_outcome},
                                                       {"session", a_session},
                                                       {"after", std::to_string(last)},
                                                       {"wait_ms", "25000"},
                                                       {"limit", "1000"}});
      HttpCallResult more;
      try {
        more = http_call(options, "GET", next);
      } catch (const std::exception& e) {
        std::cerr << "airlock: " << e.what() << "\n";
        return 2;
      }
      if (more.status != 200) return report(more);
      if (!print_page(more.body, false)) return report(more);
    }
    return 0;
  }
  if (g.json_output) {
    std::cout << r.body << "\n";
    return 0;
  }
  json::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec) {
    std::cout << r.body << "\n";
    return 0;
  }
  if (mode == "tools-show" || mode == "tools-set") {
    v = json::object{{"bindings", json::array{v}}};
    mode = "tools-list";
  }
  if (mode == "tools-apply" || mode == "tools-list") {
    std::cout << std::left << std::setw(24) << "BINDING" << std::setw(28) << "CONNECTOR"
              << std::setw(30) << "SERVER" << std::setw(13) << "STATUS" << "TOOLS\n";
    for (const auto& b : v.as_object().at("bindings").as_array()) {
      const auto& o = b.as_object();
      std::string names;
      for (const auto& t : o.at("tools").as_array()) {
        names += (names.empty() ? "" : ", ") + str(t.as_object(), "name");
      }
      if (o.contains("reason")) names = "(" + str(o, "reason") + ")";
      const std::string connector = o.contains("sandbox") ? "sandbox/" + str(o, "sandbox")
                                                          : "tunnel/" + str(o, "mcp_tunnel");
      std::cout << std::left << std::setw(24) << str(o, "name") << std::setw(28)
                << (connector + " ") << std::setw(30) << (str(o, "server") + " ") << std::setw(13)
                << str(o, "status") << names << "\n";
    }
    return 0;
  }
  if (mode == "key-create" || mode == "key-rotate") {
    const auto& o = v.as_object();
    std::cout << (mode == "key-create" ? "Created agent '" : "New key for agent '")
              << str(o, "name") << "'. Its key is shown only this once:\n\n  " << str(o, "key")
              << "\n\nAgents connect to " << options.base_url
              << "/mcp (Streamable HTTP) with the header\n  Authorization: Bearer <key>\n";
    return 0;
  }
  if (mode == "key-revoke") {
    std::cout << "Revoked " << str(v.as_object(), "revoked_keys") << " key(s) of agent '"
              << name << "'.\n";
    return 0;
  }
  if (mode == "key-list") {
    std::cout << std::left << std::setw(24) << "AGENT" << std::setw(26) << "CREATED" << "TOOLS\n";
    for (const auto& a : v.as_object().at("agents").as_array()) {
      const auto& o = a.as_object();
      std::string globs;
      for (const auto& t : o.at("tools").as_array()) {
        globs += (globs.empty() ? "" : ",") + std::string(t.as_string());
      }
      std::cout << std::left << std::setw(24) << str(o, "name") << std::setw(26)
                << str(o, "created_at") << globs << "\n";
    }
    return 0;
  }
  if (mode == "key-show" || mode == "key-update") {
    const auto& o = v.as_object();
    std::string globs;
    for (const auto& t : o.at("tools").as_array()) {
      globs += (globs.empty() ? "" : ",") + std::string(t.as_string());
    }
    std::cout << "agent " << str(o, "name") << "  created " << str(o, "created_at") << "  tools "
              << globs << "\n";
    return 0;
  }
  if (mode == "key-delete" || mode == "tools-delete") {
    std::cout << "Deleted '" << name << "'.\n";
    return 0;
  }
  if (mode == "conn-close") {
    std::cout << "Closed connection " << name << " of " << str(v.as_object(), "kind") << " '"
              << str(v.as_object(), "name") << "'.\n";
    return 0;
  }
  if (mode == "conn-list") {
    std::cout << std::left << std::setw(18) << "ID" << std::setw(9) << "KIND" << std::setw(24)
              << "NAME" << std::setw(22) << "REMOTE" << std::setw(26) << "CONNECTED SINCE"
              << std::setw(9) << "STREAMS"
              << "RTT\n";
    for (const auto& c : v.as_object().at("connections").as_array()) {
      const auto& o = c.as_object();
      std::cout << std::left << std::setw(18) << str(o, "id") << std::setw(9) << str(o, "kind")
                << std::setw(24) << str(o, "name") << std::setw(22) << str(o, "remote_address")
                << std::setw(26) << str(o, "connected_since") << std::setw(9) << str(o, "streams")
                << str(o, "rtt_us") << " us\n";
    }
    return 0;
  }
  if (action == "create" || action == "token") {
    const auto& o = v.as_object();
    const std::string kind = str(o, "kind");
    std::cout << (action == "create" ? "Created " : "New token for ") << kind << " '"
              << str(o, "name") << "'. Its token is shown only this once:\n\n  "
              << str(o, "token") << "\n\n";
    if (kind == "tunnel") {
      std::cout << "Start it inside your network with:\n  AIRLOCK_TOKEN=<token> mcp-tunnel start "
                << "--endpoint " << endpoint_hint(options.base_url)
                << (g.ca_file.empty() ? "" : " --ca-file " + g.ca_file)
                << " --allowed-credentials \"*\"\n";
    } else if (kind == "sandbox") {
      std::cout << "Start it inside your network (as root, or with its cgroup delegated) with:\n"
                << "  AIRLOCK_TOKEN=<token> sandbox-agent start --endpoint "
                << endpoint_hint(options.base_url)
                << (g.ca_file.empty() ? "" : " --ca-file " + g.ca_file) << " --config "
                << (sandbox_file.empty() ? "sandbox.yaml" : sandbox_file)
                << "\nthen expose its tools to agents with a binding such as\n"
                << "  tools:\n    - {name: " << str(o, "name") << "-tools, sandbox: "
                << str(o, "name") << "}\n";
    }
  } else if (action == "delete") {
    const auto& o = v.as_object();
    std::cout << "Deleted " << str(o, "deleted") << ": revoked " << str(o, "revoked_tokens")
              << " token(s), closed " << str(o, "closed_links") << " link(s).\n";
  } else if (action == "revoke") {
    const auto& o = v.as_object();
    std::cout << "Revoked " << str(o, "revoked_tokens") << " token(s); closed "
              << str(o, "closed_links") << " link(s).\n";
  } else if (path == "/v1/status") {
    json::array all = v.as_object().at("tunnels").as_array();
    for (auto& s : v.as_object().at("sandboxes").as_array()) all.push_back(s);
    print_table(all);
  } else if (v.is_array()) {
    print_table(v.as_array());
  } else {
    print_table(json::array{v});
  }
  return 0;
}

}  // namespace airlock::cli
