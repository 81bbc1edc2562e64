// EnvironmentWorker: `sandbox-agent worker` — the self-hosted sandbox as an environment worker
// for Claude Managed Agents' self-hosted environments. It polls the environment's work queue
// (outbound HTTPS only; it listens on nothing), acknowledges an item, holds its lease with
// heartbeats from right after the ack, and serves the item's session: it reads the session's
// event stream and its paged history, runs each tool call the session waits on once, in a
// sandbox of its own for the whole session (the session engine of the connected agent,
// sandbox_pool.h: resources, allowed_outbound, credentials, seccomp, the warm pool), and posts
// each result — redacted — back to the session. Up to max_sessions items at once.
//
// The environment key authorizes the poll and the ack; an item's sessions token (from its
// `secret`), when there is one, authorizes everything of that item. Neither ever enters a
// sandbox, a log or a tool result. One executor; not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "common/http_server.h"
#include "common/redactor.h"
#include "sandbox/sandbox_pool.h"
#include "sandbox/toolset.h"
#include "sandbox/work_api.h"

namespace airlock::sandbox {

struct EnvironmentWorkerOptions {
  managed::ApiOptions api;
  std::string environment_id;
  std::string environment_key;
  std::string worker_id;  // Anthropic-Worker-ID; empty: the host name and a random suffix
  // A session idle at the end of its turn for this long is done with.
  std::chrono::milliseconds max_idle{60'000};
  bool once = false;         // serve one work item, then return
  std::string metrics_addr;  // loopback HOST:PORT for /ready and /metrics; empty: none
  SandboxPoolOptions pool;
};

class EnvironmentWorker {
 public:
  EnvironmentWorker(asio::any_io_executor ex, EnvironmentWorkerOptions options);
  ~EnvironmentWorker();

  // Starts the session engine (sandbox_pool.h). Throws std::runtime_error.
  void start();
  // Polls and serves until stop(), or after one item with `once`; returns early when the API
  // refuses the worker for good (the reason is logged; exit_code() is then 1).
  asio::awaitable<void> run();
  int exit_code() const { return exit_code_; }
  // No new work; the items being served end now (their work is stopped), then the sandboxes.
  asio::awaitable<void> stop();

 private:
  class Item;
  friend class Item;

  asio::awaitable<void> serve(std::shared_ptr<Item> item);
  // Sleeps for `d`, or until stop() or an item ending wakes it.
  asio::awaitable<void> nap(std::chrono::milliseconds d);
  void item_ended(Item* item);
  asio::awaitable<HttpResponse> metrics_handler(HttpRequest req);

  asio::any_io_executor executor_;
  EnvironmentWorkerOptions options_;
  std::unique_ptr<managed::ApiClient> api_;
  std::unique_ptr<SandboxPool> pool_;
  std::unique_ptr<Toolset> toolset_;
  std::unique_ptr<HttpServer> metrics_;
  std::shared_ptr<const redact::Patterns> key_patterns_;
  std::map<Item*, std::shared_ptr<Item>> items_;
  asio::steady_timer wake_;
  bool stopping_ = false;
  int exit_code_ = 0;
  uint64_t served_ = 0;
  // For /metrics and /ready.
  uint64_t claimed_ = 0, calls_ = 0, redactions_ = 0, poll_failures_ = 0, leases_lost_ = 0;
  std::string poll_error_;  // why the last poll failed; empty once one succeeds
};

}  // namespace airlock::sandbox
