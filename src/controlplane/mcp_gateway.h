// McpGateway: airlockd's /mcp endpoint — one MCP server (Streamable HTTP: revision 2026-07-28
// without a session, and 2025-11-25, 2025-06-18 and 2025-03-26 in sessions, told apart per
// request) that offers each agent every tool its key allows, from every live connector
// (tunnels and sandboxes). It is the HTTP/SSE shell over GatewayCore
// (gateway_core.h), which decides sessions, routing, deadlines and what each agent is told: this
// class authenticates agent keys, turns requests into the core's events, and carries out its
// effects — streams to connectors (the connector holds the matching MCP session on its side),
// answers as JSON or SSE, the GET stream and resumption, audit records and metrics.
// Session semantics are in docs/mcp-gateway.md. Runs on airlockd's executor; not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/http_server.h"
#include "common/link.h"
#include "common/metrics.h"
#include "common/stream_contract.h"
#include "controlplane/audit_chain.h"
#include "controlplane/catalog.h"
#include "controlplane/config.h"
#include "controlplane/origin_policy.h"
#include "controlplane/store.h"

namespace airlock::controlplane {

class McpGateway {
 public:
  struct Host {
    Store* store = nullptr;
    // Opens a stream to a live connection of `connector`; kNotFound when it has none.
    std::function<Result<std::shared_ptr<LinkStream>>(const ConnectorRef& connector,
                                                      std::string_view meta)>
        open_stream;
    // Whether `connector` has a live link.
    std::function<bool(const ConnectorRef& connector)> is_live;
    // Takes a record for the audit log: every tools/call, resources/read and prompts/get (and
    // the other routed requests), every relayed sampling / elicitation / roots request once
    // the agent answers it, every refusal and every refused agent key. Must not block.
    std::function<void(AuditRecord)> audit;
    // Where the gateway registers its call metrics; may be null.
    Metrics* metrics = nullptr;
  };

  McpGateway(asio::any_io_executor ex, const AirlockdConfig& config, Host host);
  ~McpGateway();

  // Loads bindings from the store (after airlockd.yaml's `tools:` were applied) and starts
  // the idle-session sweeper.
  void start();
  // Ends every session (their streams to connectors close).
  void stop();

  asio::awaitable<HttpResponse> handle(HttpRequest req);
  // Which Origin headers /mcp serves; set once airlockd knows the port it serves on, before
  // the first request. Until then only requests without an Origin are served.
  void set_origin_policy(OriginPolicy policy);

  // A connector pushed its inventory.
  void inventory_updated(const ConnectorRef& connector, proto::InventoryReport inventory);
  // A connector's links came or went.
  void connectors_changed();

  // Validates `bindings` against each other and the current catalog; on success stores them
  // (replacing all) and returns an empty string, otherwise the reasons, one per line.
  std::string apply_bindings(const std::vector<Binding>& bindings);
  std::vector<Binding> bindings() const;
  // The catalog as the admin API shows it: bindings with their tools and availability.
  json::object describe() const;

  // The servers `connector` last reported, each {name, status, error, tools}: what the
  // console shows of a tunnel.
  json::array servers_of(const ConnectorRef& connector) const;

  // Agent keys were revoked: the next request of every agent reads its key from the store.
  void forget_agent_keys();

  size_t session_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace airlock::controlplane
