// Host-bound HTTP credentials (sandbox.http_credentials): the part of a sandbox's egress proxy
// that adds a header to requests for matching hosts, so that the value never enters the
// sandbox — not its environment, its files or its memory.
//
// An HTTPS request for such a host ends its TLS in the proxy, which presents a certificate from
// a CA made for this sandbox alone (tls::MemoryCa: the sandbox trusts its certificate, its key
// stays in this process), sets the header (replacing one of the same name the tool sent), and
// sends the request on over a TLS connection of its own that verifies the real upstream
// (the system's CAs, or the entry's ca_file). A plain-HTTP request for such a host gets the
// header the same way. Every response goes back redacted of every loaded secret, headers and
// body (re-framed as chunked, since redaction changes lengths). Requests for other hosts never
// reach this code: the proxy relays them as bytes, with nothing added.
//
// One injector per sandbox (a run, or a session of the connected agent), built on the caller's
// thread; its coroutines then run on the egress proxy's thread only.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/secrets.h"
#include "sandbox/config.h"
#include "sandbox/egress_proxy.h"

namespace airlock::sandbox {

// The entries that apply to `host` (normalized) on `port`: for each header name, the first
// entry in file order whose host matches. Sans-IO.
std::vector<const HttpCredential*> credentials_for(const std::vector<HttpCredential>& all,
                                                   std::string_view host, uint16_t port);

// The injector for one sandbox, its header values expanded from `secrets` now (a session uses
// the values loaded when it started). Null with `error` when a secret is not loaded or the CA
// cannot be made; null without an error when `config` has no http_credentials.
std::shared_ptr<CredentialInjector> make_credential_injector(
    const SandboxConfig& config, std::shared_ptr<const secrets::SecretSet> secrets,
    const std::string& run_id, std::string& error);

}  // namespace airlock::sandbox
