// Upstream transports: how mcp-tunnel reaches one private MCP server — a spawned stdio
// process, a tcp:// socket speaking newline-delimited JSON-RPC, or an http(s):// Streamable
// HTTP endpoint. Each transport instance carries exactly one MCP session; the session logic
// (initialize, id mapping, re-initialization) lives in UpstreamSession, above this interface.
// One executor (mcp-tunnel's io thread); not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/secrets.h"
#include "tunnel/child_processes.h"
#include "tunnel/config.h"

namespace airlock::tunnel {
namespace asio = boost::asio;
namespace json = boost::json;

// The credentials a transport injects into one upstream session, resolved from the tunnel's
// current secrets each time they are needed: an HTTP server's headers on every request, a
// stdio server's environment at every spawn (so a reload applies from the next one).
struct Injection {
  std::shared_ptr<const secrets::SecretStore> store;  // null: no secrets configured
  std::string agent_credential;  // the per-agent credential chosen for this session, if any
  // The tunnel's own inventory session: without an agent credential, entries that refer to
  // ${agent_secret} are left out instead of failing.
  bool inventory = false;
  // A server used without a session (2026-07-28): the inputSchema of one of its tools, from
  // the tunnel's catalog (null when unknown), so that a tools/call carries the Mcp-Param-*
  // headers the schema's x-mcp-header annotations ask for. Called on the io thread only.
  std::function<const json::object*(std::string_view tool)> tool_schema;

  // Expands every template; false with `error` naming what is missing.
  bool expand(const std::vector<std::pair<std::string, std::string>>& templates,
              std::vector<std::pair<std::string, std::string>>& out, std::string& error) const;
};

// One message from the server, and — when the transport knows it — the id of the request it
// belongs to (HTTP: the POST whose SSE stream carried it).
struct Inbound {
  json::object message;
  std::optional<json::value> related;
};

class UpstreamTransport {
 public:
  virtual ~UpstreamTransport() = default;
  // Spawns or dials, bounded by the server's connect_timeout. On failure `error` says what
  // went wrong in terms of the server's config. Cancelling it abandons the attempt.
  virtual asio::awaitable<bool> open(std::string& error) = 0;
  // Queues one message for the server. Returns false (and `error`) when the transport is
  // closed. Answers and server messages arrive through receive().
  virtual bool send(const json::object& message, std::string& error) = 0;
  // Next message from the server; nullopt once the session is over, with the reason in
  // `error`. Only one receive() may be outstanding. Cancelling it leaves the transport intact.
  virtual asio::awaitable<std::optional<Inbound>> receive(std::string& error) = 0;
  // Tells the transport what initialize negotiated (HTTP sends it as MCP-Protocol-Version
  // and then opens its GET stream), or that the server is used without a session
  // (2026-07-28: HTTP then sends the revision's headers per request and opens no GET stream).
  virtual void initialized(const std::string& protocol_version) { (void)protocol_version; }
  // Gives up on request `id`: HTTP closes the connection carrying its answer, which is how
  // 2026-07-28 cancels a request. The answer, if any still comes, is dropped.
  virtual void abandon(const json::value& id) { (void)id; }
  // Ends the session: closes stdin / the socket / DELETEs the HTTP session. Returns at once;
  // clean-up (a process's SIGTERM and SIGKILL) continues in the background.
  virtual void close() = 0;
  virtual bool closed() const = 0;
};

// Shared inbox for transports: producers push(), the session's reader awaits receive().
class Inbox {
 public:
  explicit Inbox(asio::any_io_executor ex);
  void push(Inbound in);
  // Ends the stream of messages; receive() returns nullopt with `why` after the queue drains.
  void fail(std::string why);
  bool failed() const { return failed_; }
  const std::string& why() const { return why_; }
  asio::awaitable<std::optional<Inbound>> receive(std::string& error);

 private:
  std::deque<Inbound> queue_;
  bool failed_ = false;
  std::string why_;
  asio::steady_timer signal_;
};

std::unique_ptr<UpstreamTransport> make_stdio_transport(asio::any_io_executor ex,
                                                        const UpstreamServer& server,
                                                        const Injection& injection,
                                                        std::shared_ptr<ChildProcesses> children);
std::unique_ptr<UpstreamTransport> make_tcp_transport(asio::any_io_executor ex,
                                                      const UpstreamServer& server);
std::unique_ptr<UpstreamTransport> make_http_transport(asio::any_io_executor ex,
                                                       const UpstreamServer& server,
                                                       const Injection& injection);
// `children`: where a stdio transport's process is registered, stopped and reaped.
std::unique_ptr<UpstreamTransport> make_transport(asio::any_io_executor ex,
                                                  const UpstreamServer& server,
                                                  const Injection& injection,
                                                  std::shared_ptr<ChildProcesses> children);

}  // namespace airlock::tunnel
