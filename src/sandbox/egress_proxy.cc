#include "sandbox/egress_proxy.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <optional>

#include "common/log.h"
#include "sandbox/client_hello.h"

namespace airlock::sandbox {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

struct Target {
  std::string host;  // as requested (IPv6 literals without brackets)
  uint16_t port = 0;
  std::optional<asio::ip::address> literal;
};

// "host:port" or "[v6]:port" (CONNECT's authority form); port required.
std::optional<Target> parse_authority(std::string_view a) {
  Target t;
  std::string_view port;
  if (!a.empty() && a.front() == '[') {
    const size_t close = a.find(']');
    if (close == std::string_view::npos || close + 1 >= a.size() || a[close + 1] != ':') return std::nullopt;
    t.host = std::string(a.substr(1, close - 1));
    port = a.substr(close + 2);
  } else {
    const size_t colon = a.rfind(':');
    if (colon == std::string_view::npos || a.substr(0, colon).find(':') != std::string_view::npos) {
      return std::nullopt;
    }
    t.host = std::string(a.substr(0, colon));
    port = a.substr(colon + 1);
  }
  unsigned p = 0;
  for (char c : port) {
    if (c < '0' || c > '9' || (p = p * 10 + (c - '0')) > 65535) return std::nullopt;
  }
  if (port.empty() || p == 0 || t.host.empty()) return std::nullopt;
  t.port = static_cast<uint16_t>(p);
  return t;
}

void classify_literal(Target& t) {
  boost::system::error_code ec;
  auto a = asio::ip::make_address(t.host, ec);
  if (!ec) t.literal = canonical_address(a);
}

std::string lower(std::string_view s) { return normalize_host(s); }

std::string response(int status, const char* text, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + text +
         "\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size() + 1) + "\r\n\r\n" + body + "\n";
}

}  // namespace

struct EgressProxy::Impl {
  explicit Impl(EgressOptions options) : o(std::move(options)) {}

  EgressOptions o;
  asio::io_context io{1};
  std::optional<tcp::acceptor> acceptor;
  std::atomic<uint64_t> allowed{0}, denied{0};
  size_t active = 0;

  void deny_log(const std::string& host, const std::string& reason) {
    ++denied;
    if (o.on_denied) o.on_denied(host, reason);
  }

  asio::awaitable<void> deny(tcp::socket& client, int status, const char* text,
                             const std::string& host, const std::string& reason) {
    deny_log(host, reason);
    const std::string r = response(status, text, "airlock egress: " + reason);
    co_await asio::async_write(client, asio::buffer(r), kUseTuple);
    boost::system::error_code ignored;
    client.shutdown(tcp::socket::shutdown_both, ignored);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(kUseTuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
        continue;  // e.g. EMFILE: the next accept may succeed
      }
      if (active >= o.max_connections) {
        const std::string r = response(503, "Service Unavailable",
                                       "airlock egress: too many connections from this run");
        boost::system::error_code ignored;
        asio::write(socket, asio::buffer(r), ignored);
        deny_log("", "connection limit of " + std::to_string(o.max_connections) + " reached");
        continue;
      }
      ++active;
      // `this`, not a shared_ptr: a connection still pending when stop() ends the loop is
      // destroyed with the io_context, inside ~Impl, which a shared_ptr held by its own
      // handler would never let happen.
      asio::co_spawn(io, serve(std::move(socket)), [this](std::exception_ptr e) {
        --active;
        log_failure(e, "an egress proxy connection");
      });
    }
  }

  // Resolves (or takes the literal) and keeps only the addresses the allowlist lets through;
  // `why` says why nothing is left.
  asio::awaitable<std::vector<asio::ip::address>> addresses_for(const Target& t, std::string& why) {
    std::vector<asio::ip::address> candidates;
    if (t.literal) {
      candidates.push_back(*t.literal);
    } else {
      tcp::resolver resolver(io);
      asio::steady_timer timer(io, o.connect_timeout);
      timer.async_wait([&resolver](boost::system::error_code ec) {
        if (!ec) resolver.cancel();
      });
      auto [ec, results] = co_await resolver.async_resolve(t.host, std::to_string(t.port), kUseTuple);
      timer.cancel();
      if (ec) {
        why = "'" + t.host + "' could not be resolved: " + ec.message();
        co_return std::vector<asio::ip::address>{};
      }
      for (const auto& r : results) candidates.push_back(canonical_address(r.endpoint().address()));
    }
    std::vector<asio::ip::address> ok;
    for (const auto& a : candidates) {
      std::optional<std::string> refusal;
      if (a.is_loopback() && t.port == o.proxy_port) {
        refusal = "that is the proxy itself";
      } else {
        refusal = o.allowlist.refuse_address(a, t.port);
      }
      if (refusal) {
        if (why.empty()) why = (t.literal ? "" : "'" + t.host + "' resolved: ") + *refusal;
        continue;
      }
      if (std::find(ok.begin(), ok.end(), a) == ok.end()) ok.push_back(a);
    }
    co_return ok;
  }

  // Dials the checked addresses in turn; the socket or nullopt with `why`.
  asio::awaitable<std::optional<tcp::socket>> dial(const std::vector<asio::ip::address>& addrs,
                                                   uint16_t port, std::string& why) {
    for (const auto& a : addrs) {
      tcp::socket s(io);
      asio::steady_timer timer(io, o.connect_timeout);
      timer.async_wait([&s](boost::system::error_code ec) {
        if (!ec) s.close();
      });
      auto [ec] = co_await s.async_connect(tcp::endpoint(a, port), kUseTuple);
      timer.cancel();
      if (!ec) co_return std::optional<tcp::socket>(std::move(s));
      why = "connecting to " + a.to_string() + " port " + std::to_string(port) + ": " + ec.message();
    }
    co_return std::nullopt;
  }

  static asio::awaitable<void> pump(tcp::socket& from, tcp::socket& to) {
    char buf[16 * 1024];
    for (;;) {
      auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), kUseTuple);
      if (n > 0) {
        auto [wec, written] = co_await asio::async_write(to, asio::buffer(buf, n), kUseTuple);
        if (wec) break;
      }
      if (ec) {
        boost::system::error_code ignored;
        if (ec == asio::error::eof) {
          to.shutdown(tcp::socket::shutdown_send, ignored);
          co_return;
        }
        break;
      }
    }
    // Reset or failure: end both directions.
    boost::system::error_code ignored;
    from.close(ignored);
    to.close(ignored);
  }

  asio::awaitable<void> relay(tcp::socket& a, tcp::socket& b) {
    ++allowed;
    co_await (pump(a, b) && pump(b, a));
  }

  asio::awaitable<void> serve(tcp::socket client) {
    std::string buf;
    asio::steady_timer head_timer(io, o.header_timeout);
    head_timer.async_wait([&client](boost::system::error_code ec) {
      if (!ec) client.close();
    });
    auto [ec, n] = co_await asio::async_read_until(
        client, asio::dynamic_buffer(buf, o.max_header_bytes), "\r\n\r\n", kUseTuple);
    if (ec) {
      head_timer.cancel();
      if (ec == asio::error::not_found) {
        co_await deny(client, 431, "Request Header Fields Too Large", "",
                      "request head over " + std::to_string(o.max_header_bytes) + " bytes");
      }
      co_return;
    }
    const std::string head = buf.substr(0, n);
    std::string rest = buf.substr(n);
    // Request line.
    const size_t eol = head.find("\r\n");
    const std::string line = head.substr(0, eol);
    const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    if (sp1 == std::string::npos || sp2 == sp1 || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
      head_timer.cancel();
      co_await deny(client, 400, "Bad Request", "", "malformed request line");
      co_return;
    }
    const std::string method = line.substr(0, sp1);
    const std::string target_text = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::vector<std::pair<std::string, std::string>> headers;
    for (size_t pos = eol + 2; pos < head.size();) {
      const size_t end = head.find("\r\n", pos);
      if (end == pos || end == std::string::npos) break;
      const std::string h = head.substr(pos, end - pos);
      const size_t colon = h.find(':');
      if (colon == std::string::npos || colon == 0) {
        head_timer.cancel();
        co_await deny(client, 400, "Bad Request", "", "malformed header line");
        co_return;
      }
      std::string value = h.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
      headers.emplace_back(lower(h.substr(0, colon)), value);
      pos = end + 2;
    }

    const bool is_connect = method == "CONNECT";
    Target t;
    std::string origin_form;
    if (is_connect) {
      auto parsed = parse_authority(target_text);
      if (!parsed) {
        head_timer.cancel();
        co_await deny(client, 400, "Bad Request", target_text,
                      "CONNECT needs host:port, got '" + target_text + "'");
        co_return;
      }
      t = *parsed;
    } else {
      auto u = boost::urls::parse_absolute_uri(target_text);
      if (!u || u->scheme() != "http" || u->host().empty()) {
        head_timer.cancel();
        co_await deny(client, 400, "Bad Request", "",
                      "this is an egress proxy: send CONNECT host:port or an absolute "
                      "http:// URL, got '" + target_text.substr(0, 200) + "'");
        co_return;
      }
      if (u->host_type() == boost::urls::host_type::ipv6) {
        t.host = std::string(u->encoded_host_address());
      } else {
        t.host = std::string(u->encoded_host());
      }
      t.port = u->has_port() ? u->port_number() : 80;
      origin_form = u->encoded_resource().empty() ? "/" : std::string(u->encoded_resource());
      if (origin_form.front() != '/') origin_form = "/" + origin_form;
      for (const auto& [k, v] : headers) {
        if (k != "host") continue;
        auto hp = parse_authority(v);
        const std::string host_only = hp ? hp->host : (v.size() > 2 && v.front() == '[' ? v.substr(1, v.size() - 2) : v);
        const uint16_t host_port = hp ? hp->port : 80;
        if (lower(host_only) != lower(t.host) || host_port != t.port) {
          head_timer.cancel();
          co_await deny(client, 403, "Forbidden", t.host,
                        "the Host header '" + v + "' names another host than the request "
                        "target '" + t.host + "'");
          co_return;
        }
      }
    }
    classify_literal(t);
    if (t.port == o.proxy_port && (lower(t.host) == "localhost" || (t.literal && t.literal->is_loopback()))) {
      head_timer.cancel();
      co_await deny(client, 403, "Forbidden", t.host, "that is the proxy itself");
      co_return;
    }
    if (auto refusal = o.allowlist.refuse_request(t.host, t.port)) {
      head_timer.cancel();
      co_await deny(client, 403, "Forbidden", t.host, *refusal);
      co_return;
    }
    std::string why;
    auto addrs = co_await addresses_for(t, why);
    if (addrs.empty()) {
      head_timer.cancel();
      co_await deny(client, 403, "Forbidden", t.host, why);
      co_return;
    }

    const bool inject = o.injector && o.injector->covers(lower(t.host), t.port);
    static const std::string kEstablished = "HTTP/1.1 200 Connection established\r\n\r\n";
    if (inject) {
      // The upstream first, so that a failure to reach it is still an HTTP answer.
      head_timer.cancel();
      auto upstream = co_await dial(addrs, t.port, why);
      if (!upstream) {
        co_await deny(client, 502, "Bad Gateway", t.host, why);
        co_return;
      }
      ++allowed;
      CredentialInjector::Redial redial = [this, addrs, port = t.port]()
          -> asio::awaitable<std::optional<tcp::socket>> {
        std::string ignored;
        co_return co_await dial(addrs, port, ignored);
      };
      if (!is_connect) {
        co_await o.injector->serve_http(std::move(client), std::move(buf), std::move(*upstream),
                                        t.host, t.port, std::move(redial));
        co_return;
      }
      if (!rest.empty()) {
        deny_log(t.host, "the client sent data before the CONNECT tunnel was established");
        co_return;
      }
      auto [wec, w] = co_await asio::async_write(client, asio::buffer(kEstablished), kUseTuple);
      if (wec) co_return;
      co_await o.injector->serve_tls(std::move(client), std::move(*upstream), t.host, t.port,
                                     std::move(redial));
      co_return;
    }

    if (is_connect) {
      auto [wec, w] = co_await asio::async_write(client, asio::buffer(kEstablished), kUseTuple);
      if (wec) co_return;
      // The client's first bytes must be a ClientHello naming the same host.
      HelloParse hello = parse_client_hello(rest);
      char chunk[4096];
      while (hello.state == HelloParse::State::kNeedMore) {
        auto [rec, got] = co_await client.async_read_some(asio::buffer(chunk), kUseTuple);
        if (rec) {
          head_timer.cancel();
          co_return;
        }
        rest.append(chunk, got);
        hello = parse_client_hello(rest);
      }
      head_timer.cancel();
      std::optional<std::string> refusal;
      if (hello.state == HelloParse::State::kNotTls || hello.state == HelloParse::State::kMalformed) {
        refusal = "the CONNECT tunnel must carry TLS (" + hello.error + ")";
      } else if (hello.state == HelloParse::State::kNoSni) {
        if (!t.literal) refusal = "the TLS ClientHello carries no server name (SNI)";
      } else if (lower(hello.server_name) != lower(t.host)) {
        refusal = "the TLS server name (SNI) '" + hello.server_name +
                  "' differs from the CONNECT host '" + t.host + "'";
      }
      if (refusal) {
        deny_log(t.host, *refusal);
        boost::system::error_code ignored;
        client.close(ignored);
        co_return;
      }
      auto upstream = co_await dial(addrs, t.port, why);
      if (!upstream) {
        deny_log(t.host, why);
        co_return;
      }
      auto [uec, uw] = co_await asio::async_write(*upstream, asio::buffer(rest), kUseTuple);
      if (uec) co_return;
      co_await relay(client, *upstream);
      co_return;
    }

    head_timer.cancel();
    auto upstream = co_await dial(addrs, t.port, why);
    if (!upstream) {
      co_await deny(client, 502, "Bad Gateway", t.host, why);
      co_return;
    }
    std::string out = method + " " + origin_form + " HTTP/1.1\r\n";
    for (const auto& [k, v] : headers) {
      if (k == "host" || k == "connection" || k == "proxy-connection" || k == "keep-alive" ||
          k == "proxy-authorization") {
        continue;
      }
      out += k + ": " + v + "\r\n";
    }
    const bool v6 = t.literal && t.literal->is_v6();
    out += "host: " + (v6 ? "[" + t.host + "]" : t.host) +
           (t.port == 80 ? "" : ":" + std::to_string(t.port)) + "\r\nconnection: close\r\n\r\n";
    out += rest;
    auto [uec, uw] = co_await asio::async_write(*upstream, asio::buffer(out), kUseTuple);
    if (uec) co_return;
    co_await relay(client, *upstream);
  }
};

EgressProxy::EgressProxy(EgressOptions options)
    : impl_(std::make_shared<Impl>(std::move(options))) {}

EgressProxy::~EgressProxy() { stop(); }

void EgressProxy::start(int listen_fd) {
  impl_->acceptor.emplace(impl_->io);
  impl_->acceptor->assign(tcp::v4(), listen_fd);
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
  thread_ = std::thread([impl = impl_] {
    if (impl->o.host_addresses) impl->o.allowlist.set_host_addresses(impl->o.host_addresses());
    impl->io.run();
  });
}

void EgressProxy::stop() {
  if (!thread_.joinable()) return;
  asio::post(impl_->io, [impl = impl_] {
    boost::system::error_code ignored;
    if (impl->acceptor) impl->acceptor->close(ignored);
    impl->io.stop();
  });
  thread_.join();
}

EgressStats EgressProxy::stats() const { return {impl_->allowed.load(), impl_->denied.load()}; }

const std::string& EgressProxy::ca_certificate_pem() const {
  static const std::string kNone;
  return impl_->o.injector ? impl_->o.injector->ca_certificate_pem() : kNone;
}

std::vector<asio::ip::address> local_addresses() {
  std::vector<asio::ip::address> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      out.push_back(asio::ip::address_v4(ntohl(a->sin_addr.s_addr)));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      asio::ip::address_v6::bytes_type b;
      std::copy(std::begin(a->sin6_addr.s6_addr), std::end(a->sin6_addr.s6_addr), b.begin());
      out.push_back(asio::ip::address_v6(b));
    }
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace airlock::sandbox
