// mcp_echo_server: a native MCP server with one tool, `echo`, for the gateway benchmark. It
// answers as fast as the machine allows, so that what a benchmark measures is the gateway in
// front of it and not the upstream (the Node.js fixture tops out near 7,000 calls/s here).
//
//   mcp_echo_server stdio            newline-delimited JSON-RPC on stdin/stdout
//   mcp_echo_server tcp PORT         the same over TCP, one session per connection
//   mcp_echo_server http PORT        Streamable HTTP on /mcp: JSON answers, MCP-Session-Id
//   mcp_echo_server http2026 PORT    Streamable HTTP of MCP 2026-07-28 only: server/discover,
//                                    no session; a request without the revision's _meta or
//                                    MCP-Protocol-Version header is refused (-32022, HTTP 400)
//
// Listens on 127.0.0.1 only. Handles initialize (not in http2026), notifications (no answer),
// ping, tools/list and tools/call; anything else gets "method not found".
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

namespace {

json::value error_reply(const json::value& id, int code, std::string_view message) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}};
}

// The answer to one JSON-RPC message, or nothing for a notification or a response.
std::optional<std::string> answer(const json::value& message, bool modern) {
  const json::object& m = message.get_object();
  const json::value* id = m.if_contains("id");
  const json::value* method = m.if_contains("method");
  if (!id || !method || !method->is_string()) return std::nullopt;
  const std::string_view name = method->get_string();
  json::value result;
  if (name == "tools/call") {
    const json::value* params = m.if_contains("params");
    const json::value* tool = params && params->is_object() ? params->get_object().if_contains("name") : nullptr;
    if (!tool || !tool->is_string() || tool->get_string() != "echo") {
      return json::serialize(error_reply(*id, -32602, "unknown tool"));
    }
    json::string text;
    if (const auto* args = params->get_object().if_contains("arguments"); args && args->is_object()) {
      if (const auto* msg = args->get_object().if_contains("message"); msg && msg->is_string()) {
        text = msg->get_string();
      }
    }
    result = {{"content", json::array{json::object{{"type", "text"}, {"text", text}}}}};
  } else if (name == "server/discover" && modern) {
    result = {{"resultType", "complete"},
              {"supportedVersions", json::array{"2026-07-28"}},
              {"capabilities", {{"tools", json::object{}}}},
              {"_meta",
               {{"io.modelcontextprotocol/serverInfo",
                 {{"name", "mcp-echo-server"}, {"version", "1.0.0"}}}}}};
  } else if (name == "initialize" && !modern) {
    json::string version = "2025-11-25";
    if (const auto* params = m.if_contains("params"); params && params->is_object()) {
      if (const auto* v = params->get_object().if_contains("protocolVersion"); v && v->is_string()) {
        version = v->get_string();
      }
    }
    result = {{"protocolVersion", version},
              {"capabilities", {{"tools", json::object{}}}},
              {"serverInfo", {{"name", "mcp-echo-server"}, {"version", "1.0.0"}}}};
  } else if (name == "ping") {
    result = json::object{};
  } else if (name == "tools/list") {
    result = {{"tools", json::array{json::object{
                            {"name", "echo"},
                            {"description", "returns its message"},
                            {"inputSchema",
                             {{"type", "object"},
                              {"properties", {{"message", {{"type", "string"}}}}},
                              {"required", json::array{"message"}}}}}}}};
  } else {
    return json::serialize(error_reply(*id, -32601, "method not found: " + std::string(name)));
  }
  if (modern) result.as_object()["resultType"] = "complete";
  return json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", *id}, {"result", std::move(result)}});
}

std::optional<std::string> answer(std::string_view text, bool modern = false) {
  json::error_code ec;
  json::value message = json::parse(text, ec);
  if (ec || !message.is_object()) {
    return json::serialize(error_reply(nullptr, -32700, "parse error: " + ec.message()));
  }
  return answer(message, modern);
}

int serve_stdio() {
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    if (auto reply = answer(line)) {
      reply->push_back('\n');
      std::fwrite(reply->data(), 1, reply->size(), stdout);
      std::fflush(stdout);
    }
  }
  return 0;
}

asio::awaitable<void> tcp_session(tcp::socket socket) {
  socket.set_option(tcp::no_delay(true));
  std::string in, out;
  while (true) {
    auto [ec, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(in), '\n', kUseTuple);
    if (ec) co_return;
    out.clear();
    // Every complete line read so far, answered in one write.
    size_t start = 0;
    for (size_t nl; (nl = in.find('\n', start)) != std::string::npos; start = nl + 1) {
      if (nl == start) continue;
      if (auto reply = answer(std::string_view(in).substr(start, nl - start))) {
        out += *reply;
        out += '\n';
      }
    }
    in.erase(0, start);
    if (!out.empty()) {
      auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(out), kUseTuple);
      if (wec) co_return;
    }
  }
}

std::atomic<uint64_t> next_session{1};

// What a 2026-07-28 request (`v`, its body parsed) lacks — its header, or its _meta protocol
// version — if anything.
std::string unmodern(const http::request<http::string_body>& req, const json::value& v) {
  if (req["MCP-Protocol-Version"] != "2026-07-28") return "MCP-Protocol-Version 2026-07-28";
  const json::value* version = nullptr;
  if (v.is_object()) {
    if (const auto* p = v.get_object().if_contains("params"); p && p->is_object()) {
      if (const auto* m = p->get_object().if_contains("_meta"); m && m->is_object()) {
        version = m->get_object().if_contains("io.modelcontextprotocol/protocolVersion");
      }
    }
  }
  if (!version || *version != "2026-07-28") return "_meta io.modelcontextprotocol/protocolVersion";
  return "";
}

asio::awaitable<void> http_session(tcp::socket socket, bool modern) {
  socket.set_option(tcp::no_delay(true));
  beast::flat_buffer buffer;
  while (true) {
    http::request<http::string_body> req;
    auto [ec, n] = co_await http::async_read(socket, buffer, req, kUseTuple);
    if (ec) co_return;
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    if (req.target() != "/mcp") {
      res.result(http::status::not_found);
    } else if (req.method() == http::verb::delete_) {
      res.result(http::status::ok);
    } else if (req.method() != http::verb::post) {
      res.result(http::status::method_not_allowed);
      res.set(http::field::allow, "POST, DELETE");
    } else if (modern) {
      // Parsed once: the checks of the revision, then the answer.
      json::error_code ec;
      const json::value v = json::parse(req.body(), ec);
      const std::string lacks = unmodern(req, v);
      std::optional<std::string> reply;
      if (ec || !v.is_object()) {
        reply = json::serialize(error_reply(nullptr, -32700, "parse error: " + ec.message()));
      } else if (lacks.empty()) {
        reply = answer(v, true);
      }
      res.set(http::field::content_type, "application/json");
      if (!lacks.empty() && !ec) {
        res.result(http::status::bad_request);
        res.body() = json::serialize(
            error_reply(nullptr, -32022, "this server speaks only 2026-07-28; missing " + lacks));
      } else if (reply) {
        res.result(http::status::ok);
        res.body() = std::move(*reply);
      } else {
        res.result(http::status::accepted);
      }
    } else if (auto reply = answer(req.body())) {
      res.result(http::status::ok);
      res.set(http::field::content_type, "application/json");
      if (!modern && req.body().find("\"initialize\"") != std::string::npos) {
        res.set("MCP-Session-Id", "echo-" + std::to_string(next_session++));
      }
      res.body() = std::move(*reply);
    } else {
      res.result(http::status::accepted);
    }
    res.prepare_payload();
    auto [wec, wn] = co_await http::async_write(socket, res, kUseTuple);
    if (wec || !res.keep_alive()) co_return;
  }
}

template <class Session>
int serve(int port, Session session) {
  asio::io_context io(1);
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    while (true) {
      auto [ec, socket] = co_await acceptor.async_accept(kUseTuple);
      if (ec) co_return;
      asio::co_spawn(io, session(std::move(socket)), asio::detached);
    }
  }, asio::detached);
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "stdio" && argc == 2) return serve_stdio();
  if ((mode == "tcp" || mode == "http" || mode == "http2026") && argc == 3) {
    const int port = std::atoi(argv[2]);
    if (port <= 0 || port > 65535) {
      std::cerr << "mcp_echo_server: bad port '" << argv[2] << "'\n";
      return 2;
    }
    if (mode == "tcp") return serve(port, tcp_session);
    const bool modern = mode == "http2026";
    return serve(port, [modern](tcp::socket s) { return http_session(std::move(s), modern); });
  }
  std::cerr << "usage: mcp_echo_server stdio | tcp PORT | http PORT | http2026 PORT\n";
  return 2;
}
