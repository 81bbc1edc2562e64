// RouteTable: airlockd's HTTP endpoints as one table of (method, path pattern, access,
// handler), matched without I/O. A pattern is segments separated by '/': a literal, `{name}`
// (one segment, captured under `name`), or a final `*` (the rest of the path, captured under
// "*"). ControlPlane builds the table at start-up; AdminApi, the console and the connector
// endpoint each add their own routes. Read-only once built; used on airlockd's io thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_server.h"

namespace airlock::controlplane {
namespace asio = boost::asio;

enum class Access {
  kPublic,  // no credential (health, the MCP endpoint's own authentication, sign-in)
  kAdmin,   // the admin token as a Bearer, or a console session (changes also need its CSRF token)
};

// Who is asking, and what the path captured.
struct RouteContext {
  std::map<std::string, std::string> params;
  std::string actor;  // "admin" (a Bearer token) or "console" (a signed-in browser)

  const std::string& param(const std::string& name) const;
};

using RouteHandler = std::function<asio::awaitable<HttpResponse>(HttpRequest, RouteContext)>;

// A handler that answers without waiting: `fn(request, context)` returns the response.
template <class F>
RouteHandler immediate(F fn) {
  return [fn = std::move(fn)](HttpRequest req, RouteContext ctx) -> asio::awaitable<HttpResponse> {
    co_return fn(req, ctx);
  };
}

class RouteTable {
 public:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Access access;
    RouteHandler handler;
  };
  struct Match {
    const Route* route = nullptr;
    std::map<std::string, std::string> params;
    // No route for this method, but some for the path: the methods that have one ("GET, POST").
    std::string allowed;
  };

  // Throws std::logic_error for a pattern that another route of the same method already
  // matches exactly (a programming error).
  void add(std::string method, std::string_view pattern, Access access, RouteHandler handler);
  // The route for `method` and `path` (without the query). Literal segments win over `{name}`
  // and `*`, whatever the order routes were added in.
  Match match(std::string_view method, std::string_view path) const;

 private:
  std::vector<Route> routes_;
};

// The query string of `target` as decoded key/value pairs (later duplicates win).
std::map<std::string, std::string> query_params(std::string_view target);

// 405 with an Allow header.
HttpResponse method_not_allowed(std::string_view allow);

}  // namespace airlock::controlplane
