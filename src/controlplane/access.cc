#include "controlplane/access.h"

#include "common/token.h"

namespace airlock::controlplane {

namespace {

std::string bearer_of(const HttpRequest& req) {
  const std::string h = req.header("authorization");
  constexpr std::string_view kPrefix = "Bearer ";
  if (h.size() <= kPrefix.size() || h.compare(0, kPrefix.size(), kPrefix) != 0) return {};
  return h.substr(kPrefix.size());
}

}  // namespace

Result<TokenRecord> check_bearer(Store& store, const HttpRequest& req) {
  const std::string token = bearer_of(req);
  auto id = token_id(token);
  if (!id) return make_error_code(Errc::kUnauthorized);
  auto rec = store.find_token(*id);
  if (!rec || rec->revoked || !verify_token(token, rec->hash)) {
    return make_error_code(Errc::kUnauthorized);
  }
  return rec;
}

AuditRecord auth_failure(const HttpRequest& req, std::string endpoint, std::string why) {
  AuditRecord r;
  r.type = AuditType::kAuthFailure;
  r.method = req.method + " " + req.path();
  r.target = std::move(endpoint);
  r.remote = req.remote;
  r.outcome = "refused";
  r.error_class = "unauthorized";
  boost::json::object detail{{"reason", std::move(why)}};
  const std::string h = req.header("authorization");
  if (h.rfind("Bearer ", 0) == 0) {
    if (auto id = token_id(h.substr(7))) detail["token_id"] = *id;
  } else {
    detail["credential"] = h.empty() ? "none" : "not a Bearer token";
  }
  r.detail = std::move(detail);
  return r;
}

}  // namespace airlock::controlplane
