// AdminApi: the /v1 JSON API the `airlock` CLI and the console use — tunnels and sandboxes,
// tool bindings, agents and their keys, live connections, and the audit log (queries,
// following it, export, chain verification). Every answer is JSON; every error is
// {"error": {"code", "message"}} with a stable code and a message that says what to do.
// Authentication and the audit record of each change are the route table's (ControlPlane).
// Owned by ControlPlane; runs on airlockd's io thread; not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/object.hpp>
#include <string>

#include "controlplane/audit_log.h"
#include "controlplane/config.h"
#include "controlplane/mcp_gateway.h"
#include "controlplane/registry.h"
#include "controlplane/routes.h"
#include "controlplane/store.h"

namespace airlock::controlplane {

class AdminApi {
 public:
  // `audit` is null when the audit log is off (its routes then answer 404 saying so).
  AdminApi(asio::any_io_executor ex, const AirlockdConfig& config, Store& store,
           ConnectorRegistry& registry, McpGateway& gateway, AuditLog* audit);

  void add_routes(RouteTable& routes);

  // A tunnel or sandbox as GET /v1/tunnels/NAME shows it: stored facts and live status.
  boost::json::object resource_json(const ResourceRecord& r) const;

 private:
  HttpResponse list_resources(const std::string& kind) const;
  HttpResponse create_resource(const std::string& kind, const HttpRequest& req);
  HttpResponse show_resource(const std::string& kind, const std::string& name) const;
  HttpResponse update_resource(const std::string& kind, const std::string& name,
                               const HttpRequest& req);
  HttpResponse delete_resource(const std::string& kind, const std::string& name);
  HttpResponse mint_resource_token(const std::string& kind, const std::string& name);
  HttpResponse revoke_resource(const std::string& kind, const std::string& name);
  HttpResponse status() const;

  HttpResponse put_all_bindings(const HttpRequest& req);
  HttpResponse show_binding(const std::string& name) const;
  HttpResponse put_binding(const std::string& name, const HttpRequest& req);
  HttpResponse delete_binding(const std::string& name);
  HttpResponse apply(const std::vector<Binding>& bindings);

  HttpResponse list_agents() const;
  HttpResponse create_agent(const HttpRequest& req);
  HttpResponse show_agent(const std::string& name) const;
  HttpResponse update_agent(const std::string& name, const HttpRequest& req);
  HttpResponse delete_agent(const std::string& name);
  HttpResponse mint_agent_key(const std::string& name);
  HttpResponse revoke_agent(const std::string& name);

  HttpResponse list_connections() const;
  HttpResponse close_connection(const std::string& id);

  // By value: a coroutine must own what it reads after its first suspension.
  asio::awaitable<HttpResponse> audit_query(HttpRequest req);
  asio::awaitable<HttpResponse> audit_verify();
  HttpResponse audit_export(const HttpRequest& req);

  asio::any_io_executor executor_;
  const AirlockdConfig& config_;
  Store& store_;
  ConnectorRegistry& registry_;
  McpGateway& gateway_;
  AuditLog* audit_;
};

}  // namespace airlock::controlplane
