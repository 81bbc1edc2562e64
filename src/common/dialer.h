// Dialing airlockd from a connector: endpoint URL checks, DNS, TCP, TLS (CA file, pin, or the
// system store), the authenticated WebSocket upgrade — and, when any step fails, a message that
// names the step and says what to do. Coroutine on the caller's executor.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "common/link.h"
#include "common/tls.h"

namespace airlock {

struct Endpoint {
  bool tls = true;
  std::string host;  // without brackets for IPv6
  uint16_t port = 443;
  std::string target = "/v1/connect";
};

// Accepts wss://HOST[:PORT][/PATH], and ws:// only for loopback hosts (the token would travel
// in clear otherwise). On failure `error` says what is wrong with the URL.
Result<Endpoint> parse_endpoint(std::string_view url, std::string& error);

enum class DialError {
  kNone,
  kDns,           // name did not resolve
  kRefused,       // nothing listens there
  kTimeout,       // no answer in time
  kTls,           // TLS handshake or verification failed (unknown CA, name, pin)
  kUnauthorized,  // 401: token invalid, revoked or for another resource
  kVersion,       // airlockd speaks another protocol version
  kHttp,          // any other refusal of the upgrade
  kNetwork,       // other socket errors
};

struct DialOptions {
  Endpoint endpoint;
  std::string token;
  // The command that mints a token for this connector, for the message when one is refused.
  std::string mint_hint = "airlock tunnel create NAME";
  tls::ClientOptions tls;
  std::string user_agent;
  std::chrono::milliseconds timeout{10000};  // for each of DNS, TCP, TLS and upgrade
  size_t max_message = 4 * 1024 * 1024;
  // Sent as the Airlock-Protocol header; only tests set anything but our own version.
  uint32_t protocol_version = proto::kProtocolVersion;
};

struct DialResult {
  std::unique_ptr<MessageTransport> transport;
  DialError kind = DialError::kNone;
  std::string error;
};

// `tls_context` must come from tls::make_client_context(options.tls); null for ws://.
// Cancelling it abandons the attempt.
asio::awaitable<DialResult> dial(const DialOptions& options,
                                 std::shared_ptr<asio::ssl::context> tls_context);

}  // namespace airlock
