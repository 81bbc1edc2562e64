// A small blocking HTTPS/HTTP client for the admin CLI and for tests: one request per call,
// with a deadline, TLS verified as the connectors do it (CA file, pin, or system store).
// Each call runs its own io_context; safe to call from any thread.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/tls.h"

namespace airlock {

struct HttpClientOptions {
  std::string base_url;  // https://HOST:PORT or http://127.0.0.1:PORT
  tls::ClientOptions tls;
  std::string bearer;  // sent as Authorization: Bearer …, when set
  std::chrono::milliseconds timeout{10000};
};

struct HttpCallResult {
  int status = 0;       // 0 when no answer came back
  std::string body;
  std::string error;    // why there was no answer
};

HttpCallResult http_call(const HttpClientOptions& options, const std::string& method,
                         const std::string& path, const std::string& body = {},
                         const std::vector<std::pair<std::string, std::string>>& headers = {});

}  // namespace airlock
