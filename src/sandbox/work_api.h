// The HTTP side of the environment worker (environment_worker.h): requests to Claude Managed
// Agents' Work and Sessions API, and its session event stream (server-sent events, sse.h), on
// the worker's executor. Every request carries the API's version and beta headers and one
// Bearer credential (the environment key, or a work item's sessions token); nothing else is
// ever sent for authentication. TLS is verified (the system store, or --ca-file); plain HTTP is
// refused unless the API's host is a loopback address (a local test double). One connection
// per request. Not thread-safe: one executor.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/tls.h"
#include "sandbox/sse.h"

namespace airlock::sandbox::managed {
namespace asio = boost::asio;

inline constexpr const char* kApiVersion = "2023-06-01";
inline constexpr const char* kBeta = "managed-agents-2026-04-01";

struct ApiOptions {
  std::string base_url = "https://api.anthropic.com";
  tls::ClientOptions tls;
  std::string user_agent;
};

struct ApiResult {
  int status = 0;  // 0: no answer came back (error says why)
  std::string body;
  std::string error;  // transport failure, or the API's error message for a status >= 400

  bool ok() const { return status >= 200 && status < 300; }
  // A 4xx that trying again cannot fix (not 408, 409 or 429): the worker gives up on it.
  bool permanent() const;
  // "HTTP 412: <message>" or the transport failure, for logs and errors.
  std::string describe() const;
};

// Stops a stream() from elsewhere on the same executor.
class StreamStop {
 public:
  void stop();
  bool stopped() const { return stopped_; }

 private:
  friend class ApiClient;
  std::function<void()> close_;
  bool stopped_ = false;
};

class ApiClient {
 public:
  // Throws std::invalid_argument naming what is wrong with the base URL.
  ApiClient(asio::any_io_executor ex, ApiOptions options);

  // One request: `target` is the path and query; `body` is JSON (empty: none). `headers` are
  // extra fields (Anthropic-Worker-ID).
  asio::awaitable<ApiResult> call(const char* method, std::string target, const std::string& bearer,
                                  std::string body, std::chrono::milliseconds timeout,
                                  std::vector<std::pair<std::string, std::string>> headers = {});

  // GETs an event stream: `on_open` once the answer's status is 200, then `on_event` for each
  // event as it arrives, until the stream ends, fails, or `stop` is stopped. The result's
  // status is the answer's (0 when none came); a stream that ended after 200 has ok().
  asio::awaitable<ApiResult> stream(std::string target, const std::string& bearer,
                                    std::chrono::milliseconds connect_timeout,
                                    std::function<void()> on_open,
                                    std::function<void(sse::Event)> on_event, StreamStop& stop);

  const std::string& host() const { return host_; }

 private:
  struct Connection;
  asio::awaitable<std::unique_ptr<Connection>> connect(std::chrono::milliseconds timeout,
                                                       ApiResult& failure);

  asio::any_io_executor executor_;
  ApiOptions options_;
  bool tls_ = true;
  std::string host_, port_, prefix_;
  std::shared_ptr<asio::ssl::context> ssl_;
};

}  // namespace airlock::sandbox::managed
