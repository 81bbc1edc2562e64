#include "common/dialer.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include "common/ws_transport.h"

namespace airlock {
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  return !ec && addr.is_loopback();
}

std::string host_port(const Endpoint& e) {
  return (e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host) + ":" +
         std::to_string(e.port);
}

DialResult failed(DialError kind, std::string error) {
  DialResult r;
  r.kind = kind;
  r.error = std::move(error);
  return r;
}

// airlockd answers refusals with {"error": {"message": …}}; show the message, not the JSON.
std::string error_message_of(const std::string& body) {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (!ec && v.is_object()) {
    if (auto* e = v.as_object().if_contains("error"); e && e->is_object()) {
      if (auto* m = e->as_object().if_contains("message"); m && m->is_string()) {
        return std::string(m->as_string());
      }
    }
  }
  return body.substr(0, 512);
}

// Upgrade, then wrap. Shared by the plain and TLS paths.
template <class Next>
asio::awaitable<DialResult> upgrade(Next stream, const DialOptions& o, std::string remote) {
  websocket::stream<Next> ws(std::move(stream));
  const std::string token = o.token;
  const std::string agent = o.user_agent;
  const std::string version = std::to_string(o.protocol_version);
  ws.set_option(websocket::stream_base::decorator([token, agent, version](websocket::request_type& req) {
    req.set(http::field::authorization, "Bearer " + token);
    req.set("Airlock-Protocol", version);
    req.set(http::field::user_agent, agent);
  }));
  websocket::response_type res;
  const Endpoint& e = o.endpoint;
  std::string host_header = e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host;
  if (e.port != (e.tls ? 443 : 80)) host_header += ":" + std::to_string(e.port);
  beast::get_lowest_layer(ws).expires_after(o.timeout);
  auto [ec] = co_await ws.async_handshake(res, host_header, e.target, kUseTuple);
  if (ec) {
    const int status = res.result_int();
    std::string body = error_message_of(res.body());
    if (status == 401) {
      co_return failed(DialError::kUnauthorized,
                       "airlockd refused the token (401): " + body + "; mint a new one with '" +
                           o.mint_hint +
                           "' and pass it with --token, --token-file or AIRLOCK_TOKEN");
    }
    if (status == 426) {
      co_return failed(DialError::kVersion, "airlockd refused the protocol version (426): " +
                                                body + "; install matching Airlock versions");
    }
    if (status != 0) {
      co_return failed(DialError::kHttp, "airlockd refused the WebSocket upgrade at " +
                                             e.target + " with HTTP " + std::to_string(status) +
                                             (body.empty() ? "" : ": " + body) +
                                             "; check the endpoint path (normally /v1/connect)");
    }
    co_return failed(ec == beast::error::timeout ? DialError::kTimeout : DialError::kNetwork,
                     "WebSocket upgrade with " + remote + " failed: " + ec.message());
  }
  beast::get_lowest_layer(ws).expires_never();
  DialResult r;
  r.transport = std::make_unique<WsTransport<Next>>(std::move(ws), remote, o.max_message);
  co_return r;
}

}  // namespace

Result<Endpoint> parse_endpoint(std::string_view url, std::string& error) {
  auto u = boost::urls::parse_uri(url);
  if (!u) {
    error = "endpoint '" + std::string(url) +
            "' is not a URL; expected wss://HOST[:PORT]/v1/connect";
    return make_error_code(Errc::kInvalidArgument);
  }
  Endpoint e;
  const std::string scheme = std::string(u->scheme());
  if (scheme == "wss") {
    e.tls = true;
  } else if (scheme == "ws") {
    e.tls = false;
  } else {
    error = "endpoint scheme '" + scheme + "' is not supported; use wss://HOST[:PORT]/v1/connect";
    return make_error_code(Errc::kInvalidArgument);
  }
  if (u->has_userinfo()) {
    error = "endpoint must not carry credentials in the URL; pass the token with --token, "
            "--token-file or AIRLOCK_TOKEN";
    return make_error_code(Errc::kInvalidArgument);
  }
  e.host = std::string(u->host_address());
  if (e.host.empty()) {
    error = "endpoint '" + std::string(url) + "' has no host";
    return make_error_code(Errc::kInvalidArgument);
  }
  if (u->has_port()) {
    if (u->port_number() == 0) {
      error = "endpoint port '" + std::string(u->port()) + "' is not a port number (1-65535)";
      return make_error_code(Errc::kInvalidArgument);
    }
    e.port = u->port_number();
  } else {
    e.port = e.tls ? 443 : 80;
  }
  if (!u->encoded_path().empty()) e.target = std::string(u->encoded_path());
  if (u->has_query()) e.target += "?" + std::string(u->encoded_query());
  if (!e.tls && !is_loopback_host(e.host)) {
    error = "ws:// (no TLS) is only allowed to a loopback address; use wss:// for " + e.host;
    return make_error_code(Errc::kInvalidArgument);
  }
  return e;
}

asio::awaitable<DialResult> dial(const DialOptions& o,
                                 std::shared_ptr<asio::ssl::context> tls_context) {
  auto ex = co_await asio::this_coro::executor;
  const Endpoint& e = o.endpoint;
  tcp::resolver resolver(ex);
  auto [rec, results] =
      co_await resolver.async_resolve(e.host, std::to_string(e.port), kUseTuple);
  if (rec) {
    co_return failed(DialError::kDns, "cannot resolve '" + e.host + "': " + rec.message() +
                                          "; check the endpoint's host name and DNS");
  }
  TcpStream tcp_stream(ex);
  tcp_stream.expires_after(o.timeout);
  auto [cec, ep] = co_await tcp_stream.async_connect(results, kUseTuple);
  if (cec) {
    if (cec == asio::error::connection_refused) {
      co_return failed(DialError::kRefused,
                       "connection refused by " + host_port(e) +
                           ": is airlockd running and listening on that port?");
    }
    if (cec == beast::error::timeout) {
      co_return failed(DialError::kTimeout, "no answer from " + host_port(e) + " within " +
                                                std::to_string(o.timeout.count()) +
                                                " ms; check the address and firewalls");
    }
    co_return failed(DialError::kNetwork, "cannot connect to " + host_port(e) + ": " +
                                              cec.message());
  }
  boost::system::error_code ignored;
  tcp_stream.socket().set_option(tcp::no_delay(true), ignored);
  const std::string remote = host_port(e);
  if (!e.tls) co_return co_await upgrade(std::move(tcp_stream), o, remote);

  TlsStream tls_stream(std::move(tcp_stream), *tls_context);
  tls::prepare_client(tls_stream.native_handle(), e.host, o.tls);
  beast::get_lowest_layer(tls_stream).expires_after(o.timeout);
  auto [hec] = co_await tls_stream.async_handshake(asio::ssl::stream_base::client, kUseTuple);
  if (hec) {
    co_return failed(DialError::kTls, tls::describe_handshake_failure(
                                          tls_stream.native_handle(), hec, e.host, o.tls));
  }
  if (auto why = tls::check_pin(tls_stream.native_handle(), e.host, o.tls); !why.empty()) {
    co_return failed(DialError::kTls, "TLS verification failed: " + why);
  }
  co_return co_await upgrade(std::move(tls_stream), o, remote);
}

}  // namespace airlock
