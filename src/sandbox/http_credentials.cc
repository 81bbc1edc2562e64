#include "sandbox/http_credentials.h"

#include <openssl/ssl.h>
#include <poll.h>
#include <openssl/x509_vfy.h>
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>

#include "common/redactor.h"
#include "common/tls.h"

namespace airlock::sandbox {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

std::vector<const HttpCredential*> credentials_for(const std::vector<HttpCredential>& all,
                                                   std::string_view host, uint16_t port) {
  std::vector<const HttpCredential*> out;
  for (const auto& c : all) {
    if (!names_match(c.target, host) || (c.target.port != 0 && c.target.port != port)) continue;
    const bool header_taken = std::any_of(out.begin(), out.end(), [&](const HttpCredential* o) {
      return beast::iequals(o->header, c.header);
    });
    if (!header_taken) out.push_back(&c);
  }
  return out;
}

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
// A TLS handshake or a request head from the sandbox; the wait for its next request on a
// kept-alive connection; the upstream's answer, and any pause within a body either way.
constexpr std::chrono::seconds kHeadTimeout{10};
constexpr std::chrono::seconds kIdleTimeout{60};
constexpr std::chrono::seconds kTransferTimeout{300};
constexpr uint32_t kMaxHead = 64 * 1024;
constexpr size_t kChunk = 16 * 1024;

// Fields that belong to one hop, or that this proxy writes itself.
bool hop_field(std::string_view name) {
  static constexpr std::string_view kHop[] = {
      "connection", "keep-alive",        "proxy-connection", "proxy-authorization",
      "te",         "trailer",           "upgrade",          "transfer-encoding",
      "content-length", "host", "proxy-authenticate", "expect"};
  return std::any_of(std::begin(kHop), std::end(kHop),
                     [&](std::string_view h) { return beast::iequals(h, name); });
}

std::string hex(size_t n) {
  char buf[32];
  return std::string(buf, static_cast<size_t>(std::snprintf(buf, sizeof buf, "%zx", n)));
}

// What the sandbox is told when the proxy cannot complete its request.
std::string error_response(int status, std::string_view reason, const std::string& text) {
  const std::string body = "airlock egress: " + text + "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

class HostCredentials final : public CredentialInjector,
                              public std::enable_shared_from_this<HostCredentials> {
 public:
  HostCredentials(const SandboxConfig& config, std::shared_ptr<const secrets::SecretSet> secrets,
                  std::string run_id)
      : run_id_(std::move(run_id)),
        ca_("Airlock sandbox egress CA (" + run_id_ + ")", 30),
        patterns_(secrets ? secrets->patterns : nullptr) {
    for (const auto& c : config.http_credentials) {
      HttpCredential expanded = c;
      std::string error;
      if (!secrets || !secrets::expand(c.value, *secrets, nullptr, expanded.value, error)) {
        throw std::runtime_error("sandbox.http_credentials for '" + c.host + "': " +
                                 (secrets ? error : "no secrets are loaded"));
      }
      if (expanded.value.find_first_of("\r\n") != std::string::npos) {
        throw std::runtime_error("sandbox.http_credentials for '" + c.host +
                                 "': the secret's value holds a line break, which a header "
                                 "cannot carry");
      }
      credentials_.push_back(std::move(expanded));
    }
  }
  ~HostCredentials() override {
    for (auto& c : credentials_) std::fill(c.value.begin(), c.value.end(), '\0');
  }

  bool covers(std::string_view host, uint16_t port) const override {
    return !credentials_for(credentials_, host, port).empty();
  }
  const std::string& ca_certificate_pem() const override { return ca_.certificate_pem(); }

  asio::awaitable<void> serve_tls(tcp::socket client_socket, tcp::socket upstream_socket,
                                  std::string host, uint16_t port, Redial redial) override {
    auto self = shared_from_this();
    no_delay(client_socket, upstream_socket);
    std::shared_ptr<ssl::context> server_ctx;
    std::shared_ptr<ssl::context> client_ctx;
    const auto applicable = credentials_for(credentials_, normalize_host(host), port);
    std::string ca_file;
    for (const auto* c : applicable) {
      if (ca_file.empty()) ca_file = c->ca_file;
    }
    try {
      server_ctx = ca_.server_context_for(normalize_host(host));
      client_ctx = upstream_context(ca_file);
    } catch (const std::exception& e) {
      spdlog::error("run {}: egress to '{}': {}", run_id_, host, e.what());
      co_return;
    }
    beast::ssl_stream<beast::tcp_stream> client(beast::tcp_stream(std::move(client_socket)),
                                                *server_ctx);
    client.next_layer().expires_after(kHeadTimeout);
    auto [hec] = co_await client.async_handshake(ssl::stream_base::server, kUseTuple);
    if (hec) {
      spdlog::warn("run {}: egress to '{}': the sandbox's TLS client did not accept the "
                   "sandbox CA's certificate ({}); a client that trusts only its own CA "
                   "cannot be given the credential",
                   run_id_, host, hec.message());
      co_return;
    }
    UpstreamLink<beast::ssl_stream<beast::tcp_stream>> link;
    // A TLS connection to the upstream on `socket`, verified; the reason when it is not.
    auto connect = [&](tcp::socket socket) -> asio::awaitable<std::string> {
      link.stream.reset();
      link.stream.emplace(beast::tcp_stream(std::move(socket)), *client_ctx);
      tls::prepare_client(link.stream->native_handle(), host, tls::ClientOptions{ca_file});
      link.stream->next_layer().expires_after(kHeadTimeout);
      auto [uec] = co_await link.stream->async_handshake(ssl::stream_base::client, kUseTuple);
      if (!uec) co_return std::string();
      const long vr = SSL_get_verify_result(link.stream->native_handle());
      co_return "the certificate of '" + host + "' could not be verified against " +
          (ca_file.empty() ? "the system's CAs" : ca_file) + ": " +
          (vr != X509_V_OK ? X509_verify_cert_error_string(vr) : uec.message());
    };
    link.reconnect = [&]() -> asio::awaitable<bool> {
      auto socket = co_await redial();
      if (!socket) co_return false;
      boost::system::error_code ignored;
      socket->set_option(tcp::no_delay(true), ignored);
      const std::string why = co_await connect(std::move(*socket));
      if (!why.empty()) spdlog::warn("run {}: egress to '{}': {}", run_id_, host, why);
      co_return why.empty();
    };
    if (const std::string why = co_await connect(std::move(upstream_socket)); !why.empty()) {
      // Told as the answer to its request (read first: closing on unread bytes would reset
      // the connection and lose the answer).
      beast::flat_buffer ignored_buffer;
      http::request_parser<http::empty_body> ignored_request;
      ignored_request.header_limit(kMaxHead);
      client.next_layer().expires_after(kHeadTimeout);
      co_await http::async_read_header(client, ignored_buffer, ignored_request, kUseTuple);
      co_await answer(client, 502, "Bad Gateway", why);
      client.next_layer().expires_after(std::chrono::seconds(2));
      co_await client.async_shutdown(kUseTuple);
      co_return;
    }
    beast::flat_buffer from_client;
    co_await exchange(client, from_client, link, host, port, /*plain=*/false);
    client.next_layer().expires_after(std::chrono::seconds(2));
    co_await client.async_shutdown(kUseTuple);
  }

  asio::awaitable<void> serve_http(tcp::socket client_socket, std::string received,
                                   tcp::socket upstream_socket, std::string host,
                                   uint16_t port, Redial redial) override {
    auto self = shared_from_this();
    no_delay(client_socket, upstream_socket);
    beast::tcp_stream client(std::move(client_socket));
    UpstreamLink<beast::tcp_stream> link;
    link.stream.emplace(std::move(upstream_socket));
    link.reconnect = [&]() -> asio::awaitable<bool> {
      auto socket = co_await redial();
      if (!socket) co_return false;
      boost::system::error_code ignored;
      socket->set_option(tcp::no_delay(true), ignored);
      link.stream.reset();
      link.stream.emplace(std::move(*socket));
      co_return true;
    };
    beast::flat_buffer from_client;
    auto space = from_client.prepare(received.size());
    asio::buffer_copy(space, asio::buffer(received));
    from_client.commit(received.size());
    co_await exchange(client, from_client, link, host, port, /*plain=*/true);
  }

 private:
  // A message goes out in a few writes (head, body pieces); waiting for acknowledgements between
  // them (Nagle against delayed ACKs) could stall an exchange for a delayed-ACK timeout.
  static void no_delay(tcp::socket& a, tcp::socket& b) {
    boost::system::error_code ignored;
    a.set_option(tcp::no_delay(true), ignored);
    b.set_option(tcp::no_delay(true), ignored);
  }

  std::shared_ptr<ssl::context> upstream_context(const std::string& ca_file) {
    auto& ctx = upstream_contexts_[ca_file];
    if (!ctx) ctx = tls::make_client_context(tls::ClientOptions{ca_file});
    return ctx;
  }

  // Requests from the sandbox, one after another on one connection, each sent upstream with
  // the credential and answered with the upstream's response, redacted.
  // The connection to the upstream: replaced before a request when it has been idle long
  // enough for the upstream to have closed it (many servers keep an idle connection 5 s), or
  // when it shows that it has.
  template <class Stream>
  struct UpstreamLink {
    std::optional<Stream> stream;
    std::function<asio::awaitable<bool>()> reconnect;  // a new `stream`; false: none
    std::optional<std::chrono::steady_clock::time_point> idle_since;  // since its last answer
  };
  static constexpr std::chrono::seconds kUpstreamReuse{2};

  // Readable (a close_notify, an EOF), hung up or failed: an idle connection that is closing.
  static bool closing(tcp::socket& socket) {
    pollfd p{socket.native_handle(), POLLIN | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) != 0;
  }

  template <class Client, class Stream>
  asio::awaitable<void> exchange(Client& client, beast::flat_buffer& from_client,
                                 UpstreamLink<Stream>& link, const std::string& host,
                                 uint16_t port, bool plain) {
    const std::string name = normalize_host(host);
    const auto applicable = credentials_for(credentials_, name, port);
    beast::flat_buffer from_upstream;
    char body[kChunk];
    for (bool first = true;; first = false) {
      http::request_parser<http::buffer_body> request;
      request.header_limit(kMaxHead);
      request.body_limit(boost::none);
      beast::get_lowest_layer(client).expires_after(first ? kHeadTimeout : kIdleTimeout);
      auto [rec, rn] = co_await http::async_read_header(client, from_client, request, kUseTuple);
      if (rec) {
        if (rec != http::error::end_of_stream && rec != asio::error::eof &&
            rec != asio::ssl::error::stream_truncated && rec != beast::error::timeout) {
          co_await answer(client, 400, "Bad Request",
                          "the request from the sandbox is not valid HTTP/1.1: " + rec.message());
        }
        co_return;
      }
      const auto& head = request.get();
      // The target: origin form ("/path?q"), or absolute form naming this very host and port.
      std::string target(head.target());
      if (!target.empty() && target.front() != '/' && target != "*") {
        auto url = boost::urls::parse_absolute_uri(target);
        const uint16_t url_port =
            url && url->has_port() ? url->port_number() : (plain ? 80 : 443);
        if (!url || normalize_host(url->encoded_host()) != name || url_port != port ||
            url->scheme() != (plain ? "http" : "https")) {
          co_await answer(client, 403, "Forbidden",
                          "the request target '" + target.substr(0, 200) +
                              "' is not on the host this connection is for, '" + host + "'");
          co_return;
        }
        target = url->encoded_resource().empty() ? "/" : std::string(url->encoded_resource());
      }
      if (auto h = head.find(http::field::host); h != head.end()) {
        std::string value(h->value());
        std::string only = value;
        uint16_t host_port = plain ? 80 : 443;
        if (const size_t colon = value.rfind(':');
            colon != std::string::npos && value.find(']', colon) == std::string::npos) {
          only = value.substr(0, colon);
          host_port = static_cast<uint16_t>(std::atoi(value.c_str() + colon + 1));
        }
        if (normalize_host(only) != name || host_port != port) {
          co_await answer(client, 403, "Forbidden",
                          "the Host header '" + value.substr(0, 200) +
                              "' names another host than the one this connection is for, '" +
                              host + "'");
          co_return;
        }
      }
      // The head sent upstream: the sandbox's fields, less the hop's and those the credentials
      // set (replaced, never sent twice), then Host, the credentials and the body's framing.
      std::string out = std::string(head.method_string()) + " " + target + " HTTP/1.1\r\n";
      for (const auto& f : head) {
        const auto field = f.name_string();
        if (hop_field(field)) continue;
        const bool replaced = std::any_of(applicable.begin(), applicable.end(),
                                          [&](const HttpCredential* c) {
                                            return beast::iequals(c->header, field);
                                          });
        if (replaced) continue;
        out.append(field.data(), field.size()).append(": ");
        out.append(f.value().data(), f.value().size()).append("\r\n");
      }
      const bool default_port = port == (plain ? 80 : 443);
      out += "Host: " + host + (default_port ? "" : ":" + std::to_string(port)) + "\r\n";
      for (const auto* c : applicable) out += c->header + ": " + c->value + "\r\n";
      const bool chunked_request = request.chunked();
      if (chunked_request) {
        out += "Transfer-Encoding: chunked\r\n";
      } else if (auto length = request.content_length(); length && *length > 0) {
        out += "Content-Length: " + std::to_string(*length) + "\r\n";
      }
      const bool client_keeps = head.keep_alive();
      out += "\r\n";
      const bool is_head = head.method() == http::verb::head;
      struct Wipe {  // `out` holds the credential
        std::string& s;
        ~Wipe() { std::fill(s.begin(), s.end(), '\0'); }
      } wipe{out};
      // A reused connection the upstream may have closed: replaced first when it idled long or
      // shows it; and a request without a body that then finds it closed (the upstream closed
      // it just as the request went) is sent once more on a new one, before anything of an
      // answer has come.
      bool reused = link.idle_since.has_value();
      if (reused && (std::chrono::steady_clock::now() - *link.idle_since > kUpstreamReuse ||
                     closing(beast::get_lowest_layer(*link.stream).socket()))) {
        from_upstream.consume(from_upstream.size());
        reused = false;
        if (!co_await link.reconnect()) {
          co_await answer(client, 502, "Bad Gateway", "connecting to '" + host + "' again failed");
          co_return;
        }
      }
      link.idle_since.reset();
      const bool resendable = reused && request.is_done();  // no body to send again
      bool resent = false;
      auto& upstream = *link.stream;  // the same object after a reconnect (replaced in place)
      for (;;) {
        beast::get_lowest_layer(upstream).expires_after(kTransferTimeout);
        auto [wec, wn] = co_await asio::async_write(upstream, asio::buffer(out), kUseTuple);
        if (!wec) break;
        if (resendable && !resent) {
          resent = true;
          from_upstream.consume(from_upstream.size());
          if (co_await link.reconnect()) continue;
        }
        co_await answer(client, 502, "Bad Gateway",
                        "sending the request to '" + host + "' failed: " + wec.message());
        co_return;
      }
      // A client that waits for "100 Continue" before its body gets it from here (Expect is
      // not passed on, so the upstream answers only once the body is there).
      if (auto e = head.find(http::field::expect);
          e != head.end() && beast::iequals(e->value(), "100-continue") && !request.is_done()) {
        static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        auto [cec, cn] = co_await asio::async_write(client, asio::buffer(kContinue), kUseTuple);
        if (cec) co_return;
      }
      // The request body, as it arrives.
      while (!request.is_done()) {
        request.get().body().data = body;
        request.get().body().size = sizeof body;
        beast::get_lowest_layer(client).expires_after(kTransferTimeout);
        auto [bec, bn] = co_await http::async_read(client, from_client, request, kUseTuple);
        if (bec == http::error::need_buffer) bec = {};
        if (bec) co_return;
        const size_t got = sizeof body - request.get().body().size;
        if (got == 0 && !request.is_done()) continue;
        std::string piece = chunked_request ? hex(got) + "\r\n" : std::string();
        piece.append(body, got);
        if (chunked_request) piece += request.is_done() ? "\r\n0\r\n\r\n" : "\r\n";
        if (chunked_request && got == 0) piece = "0\r\n\r\n";
        beast::get_lowest_layer(upstream).expires_after(kTransferTimeout);
        auto [pec, pn] = co_await asio::async_write(upstream, asio::buffer(piece), kUseTuple);
        if (pec) co_return;
      }
      // The response (interim 1xx ones passed on first), redacted.
      bool keep = client_keeps;
      bool answered = false;  // something of it went to the sandbox
      for (;;) {
        http::response_parser<http::buffer_body> response;
        response.header_limit(kMaxHead);
        response.body_limit(boost::none);
        if (is_head) response.skip(true);
        beast::get_lowest_layer(upstream).expires_after(kTransferTimeout);
        auto [hec, hn] =
            co_await http::async_read_header(upstream, from_upstream, response, kUseTuple);
        if (hec) {
          if (resendable && !resent && !answered && from_upstream.size() == 0) {
            resent = true;
            if (co_await link.reconnect()) {
              beast::get_lowest_layer(upstream).expires_after(kTransferTimeout);
              auto [rec2, rn2] = co_await asio::async_write(upstream, asio::buffer(out), kUseTuple);
              if (!rec2) continue;  // the answer, on the new connection
            }
          }
          co_await answer(client, 502, "Bad Gateway",
                          "'" + host + "' did not answer: " + hec.message());
          co_return;
        }
        const auto& rh = response.get();
        const unsigned status = rh.result_int();
        const bool interim = status >= 100 && status < 200;
        const bool has_body = !interim && status != 204 && status != 304 && !is_head;
        std::optional<redact::StreamRedactor> redactor;
        if (patterns_) redactor.emplace(patterns_);
        std::string reply = "HTTP/1.1 " + std::to_string(status) + " " +
                            std::string(rh.reason()) + "\r\n";
        for (const auto& f : rh) {
          if (hop_field(f.name_string())) continue;
          std::string value = patterns_ ? redact::redact(patterns_, f.value()) : std::string(f.value());
          reply.append(f.name_string().data(), f.name_string().size()).append(": ");
          reply += value + "\r\n";
        }
        if (is_head) {
          if (auto length = response.content_length()) {
            reply += "Content-Length: " + std::to_string(*length) + "\r\n";
          }
        } else if (has_body) {
          reply += "Transfer-Encoding: chunked\r\n";
        }
        if (!interim) {
          keep = keep && rh.keep_alive() && !rh.need_eof();
          if (!keep) reply += "Connection: close\r\n";
        }
        reply += "\r\n";
        beast::get_lowest_layer(client).expires_after(kTransferTimeout);
        auto [rwec, rwn] = co_await asio::async_write(client, asio::buffer(reply), kUseTuple);
        if (rwec) co_return;
        answered = true;
        if (interim) {
          if (status == 101) co_return;  // no upgrades through a credential (Upgrade is a hop field)
          continue;
        }
        std::string redacted;
        while (has_body && !response.is_done()) {
          response.get().body().data = body;
          response.get().body().size = sizeof body;
          beast::get_lowest_layer(upstream).expires_after(kTransferTimeout);
          auto [bec, bn] = co_await http::async_read(upstream, from_upstream, response, kUseTuple);
          if (bec == http::error::need_buffer) bec = {};
          if (bec) co_return;  // the sandbox sees a chunked body cut short, not a whole one
          const size_t got = sizeof body - response.get().body().size;
          redacted.clear();
          if (redactor) {
            redactor->write(std::string_view(body, got), redacted);
            if (response.is_done()) redactor->finish(redacted);
          } else {
            redacted.assign(body, got);
          }
          std::string piece;
          if (!redacted.empty()) piece = hex(redacted.size()) + "\r\n" + redacted + "\r\n";
          if (response.is_done()) piece += "0\r\n\r\n";
          if (piece.empty()) continue;
          auto [cec, cn] = co_await asio::async_write(client, asio::buffer(piece), kUseTuple);
          if (cec) co_return;
        }
        if (redactor) {
          redactor->take_new_counts([&](size_t secret, uint64_t n) {
            spdlog::warn("run {}: secret '{}' redacted from a response of '{}' {} time(s)",
                         run_id_, patterns_->name(secret), host, n);
          });
        }
        break;
      }
      if (!keep) co_return;
      link.idle_since = std::chrono::steady_clock::now();
    }
  }

  template <class Client>
  asio::awaitable<void> answer(Client& client, int status, std::string_view reason,
                               const std::string& text) {
    spdlog::warn("run {}: egress: {}", run_id_, text);
    const std::string r = error_response(status, reason, text);
    beast::get_lowest_layer(client).expires_after(kHeadTimeout);
    co_await asio::async_write(client, asio::buffer(r), kUseTuple);
  }

  std::string run_id_;
  tls::MemoryCa ca_;
  std::shared_ptr<const redact::Patterns> patterns_;
  std::vector<HttpCredential> credentials_;  // values expanded
  std::map<std::string, std::shared_ptr<ssl::context>> upstream_contexts_;  // by ca_file
};

}  // namespace

std::shared_ptr<CredentialInjector> make_credential_injector(
    const SandboxConfig& config, std::shared_ptr<const secrets::SecretSet> secrets,
    const std::string& run_id, std::string& error) {
  if (config.http_credentials.empty()) return nullptr;
  try {
    return std::make_shared<HostCredentials>(config, std::move(secrets), run_id);
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;
  }
}

}  // namespace airlock::sandbox
