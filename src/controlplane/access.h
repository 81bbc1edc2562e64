// Who a request is from: the Bearer token checks the connector endpoint and the admin API
// share, and the audit record of a refused attempt. Reads the store; used on airlockd's io
// thread.
#pragma once

#include <string>

#include "airlock/error.h"
#include "common/http_server.h"
#include "controlplane/audit_chain.h"
#include "controlplane/store.h"

namespace airlock::controlplane {

// The stored record of the request's `Authorization: Bearer` token when it is well formed,
// known, not revoked and matches; kUnauthorized otherwise.
Result<TokenRecord> check_bearer(Store& store, const HttpRequest& req);

// An auth_failure record: `endpoint` is what was asked for ("/v1/connect", "/mcp", "admin
// API"), `why` a sentence. Only the token's public id is kept, never what was presented.
AuditRecord auth_failure(const HttpRequest& req, std::string endpoint, std::string why);

}  // namespace airlock::controlplane
