#include "controlplane/routes.h"

#include <boost/url/decode_view.hpp>
#include <stdexcept>

namespace airlock::controlplane {

namespace {

std::vector<std::string> split(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    const size_t slash = path.find('/', i);
    const size_t end = slash == std::string_view::npos ? path.size() : slash;
    if (end > i) out.emplace_back(path.substr(i, end - i));
    if (slash == std::string_view::npos) break;
    i = slash + 1;
  }
  return out;
}

std::string decode(std::string_view s) {
  // '+' is a space in a query string; boost::urls decodes only %XX.
  std::string plus(s);
  for (char& c : plus) {
    if (c == '+') c = ' ';
  }
  try {
    boost::urls::decode_view view(plus);
    return std::string(view.begin(), view.end());
  } catch (const std::exception&) {
    return plus;  // malformed escapes are taken literally
  }
}

// How specifically `segments` matches `path`: -1 for no match; more literal segments rank
// higher.
int rank(const std::vector<std::string>& segments, const std::vector<std::string>& path,
         std::map<std::string, std::string>* params) {
  int literal = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string& s = segments[i];
    if (s == "*" && i + 1 == segments.size()) {
      if (params) {
        std::string rest;
        for (size_t j = i; j < path.size(); ++j) rest += (j > i ? "/" : "") + path[j];
        (*params)["*"] = rest;
      }
      return literal;
    }
    if (i >= path.size()) return -1;
    if (s.size() > 2 && s.front() == '{' && s.back() == '}') {
      if (params) (*params)[s.substr(1, s.size() - 2)] = path[i];
      continue;
    }
    if (s != path[i]) return -1;
    ++literal;
  }
  return segments.size() == path.size() ? literal + 1 : -1;
}

}  // namespace

const std::string& RouteContext::param(const std::string& name) const {
  static const std::string kEmpty;
  auto it = params.find(name);
  return it == params.end() ? kEmpty : it->second;
}

void RouteTable::add(std::string method, std::string_view pattern, Access access,
                     RouteHandler handler) {
  Route r{std::move(method), split(pattern), access, std::move(handler)};
  auto shape = [](std::vector<std::string> segments) {
    for (auto& s : segments) {
      if (s.size() > 2 && s.front() == '{' && s.back() == '}') s = "{}";
    }
    return segments;
  };
  for (const auto& other : routes_) {
    if (other.method == r.method && shape(other.segments) == shape(r.segments)) {
      throw std::logic_error("route " + r.method + " " + std::string(pattern) + " added twice");
    }
  }
  routes_.push_back(std::move(r));
}

RouteTable::Match RouteTable::match(std::string_view method, std::string_view path) const {
  const auto parts = split(path);
  for (const auto& p : parts) {
    // Dot segments never name a resource: refuse them rather than guess.
    if (p == "." || p == "..") return {};
  }
  Match best;
  int best_rank = -1;
  std::string allowed;
  for (const auto& r : routes_) {
    const int rk = rank(r.segments, parts, nullptr);
    if (rk < 0) continue;
    if (r.method != method) {
      if (allowed.find(r.method) == std::string::npos) {
        allowed += (allowed.empty() ? "" : ", ") + r.method;
      }
      continue;
    }
    if (rk > best_rank) {
      best_rank = rk;
      best.route = &r;
    }
  }
  if (best.route) {
    rank(best.route->segments, parts, &best.params);
  } else {
    best.allowed = allowed;
  }
  return best;
}

std::map<std::string, std::string> query_params(std::string_view target) {
  std::map<std::string, std::string> out;
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return out;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view kv = rest.substr(0, amp);
    const size_t eq = kv.find('=');
    if (!kv.empty()) {
      out[decode(kv.substr(0, eq))] =
          eq == std::string_view::npos ? std::string() : decode(kv.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return out;
}

HttpResponse method_not_allowed(std::string_view allow) {
  auto r = HttpResponse::error(405, "method_not_allowed",
                               "method not allowed here; allowed: " + std::string(allow));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

}  // namespace airlock::controlplane
