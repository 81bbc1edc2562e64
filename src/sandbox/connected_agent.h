// SandboxAgent: `sandbox-agent start` as a library — the self-hosted sandbox, connected. It
// dials out to airlockd (the Connector every connector uses: TLS verification, pinning, HA
// links, reconnect backoff, drain), says in its hello what it runs (image, resources,
// allowlist, max_sessions; never a secret), and is the MCP service's backend: each agent MCP
// session airlockd opens gets a sandbox of its own (session.h) in which the agent toolset runs
// (toolset.h). Sessions persist across the agent session's calls and end with it, when it idles
// out, or when the agent stops. An agent without a session (MCP 2026-07-28; its stream is
// `stateless`) gets no sandbox per stream: it opens sandboxes by handle (sandbox_handles.h),
// which any agent may also do. The sandboxes, the warm pool among them, come from the session
// engine it shares with the environment worker (sandbox_pool.h). It listens on nothing but an
// opt-in loopback /ready and
// /metrics. Redactions of its secrets become the same events as the tunnel's.
// One executor (its io thread); sessions' watcher threads only post to it. Not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <set>
#include <string>

#include "common/connector.h"
#include "common/http_server.h"
#include "common/mcp_service.h"
#include "common/secrets.h"
#include "sandbox/config.h"
#include "sandbox/sandbox_handles.h"
#include "sandbox/sandbox_pool.h"
#include "sandbox/toolset.h"

namespace airlock::sandbox {

struct SandboxAgentOptions {
  ConnectorOptions connector;  // endpoint, token, TLS, HA links, drain
  SandboxConfig config;
  std::shared_ptr<secrets::SecretStore> secrets;  // loaded; null: a store with no sources
  // The sandbox's root, resolved (a registry image pulled) before the agent is made.
  ImageRoot image;
  std::string toolbox_path;  // empty: sandbox-agent-toolbox next to the running executable
  std::string runtime_dir = "/tmp";
  std::string metrics_addr;  // loopback HOST:PORT; empty: no listener at all
};

class SandboxAgent final : private McpBackend {
 public:
  SandboxAgent(asio::any_io_executor ex, SandboxAgentOptions options);
  ~SandboxAgent();

  // Resolves the image and the toolbox, binds the metrics listener if asked for, and starts the
  // warm pool. Throws std::runtime_error with an operator-facing message.
  void start();
  // Connects and serves until stop().
  asio::awaitable<void> run();
  // Drains: no new sessions; idle ones end now, busy ones when their call is answered; the
  // links drain for --drain-timeout; then every sandbox ends.
  asio::awaitable<void> stop();

 private:
  class ToolSession;
  class BusySession;

  // McpBackend
  std::string refuse(const proto::McpStreamOpen& open) const override;
  size_t max_message(const std::string& server) const override;
  std::shared_ptr<McpBackendSession> open_session(const proto::McpStreamOpen& open, Emit emit,
                                                  End end, std::string& problem) override;
  proto::InventoryReport inventory() const override;

  void session_ended();
  // sandbox_open / sandbox_close for `agent`: the tool result.
  boost::json::object by_handle(const std::string& tool, const std::string& agent,
                                const boost::json::value& args);
  // Reports the sessions in use on `link`, or on one usable link: airlockd keeps the report for
  // every link of this process.
  void push_load(const std::shared_ptr<Link>& link = nullptr);
  asio::awaitable<HttpResponse> metrics_handler(HttpRequest req);

  asio::any_io_executor executor_;
  SandboxAgentOptions options_;
  std::unique_ptr<Toolset> toolset_;
  std::unique_ptr<SandboxPool> pool_;
  std::unique_ptr<SandboxHandles> handles_;
  std::unique_ptr<McpService> service_;  // before connector_: the connector calls into it
  std::unique_ptr<Connector> connector_;
  std::unique_ptr<HttpServer> metrics_;
  std::set<std::shared_ptr<ToolSession>> sessions_;
  bool stopping_ = false;
  uint64_t sessions_total_ = 0, sessions_busy_ = 0, calls_total_ = 0, idle_ended_ = 0;
};

}  // namespace airlock::sandbox
