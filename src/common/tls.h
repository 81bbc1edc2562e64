// TLS for every program: airlockd's self-managed CA and server certificate, server and client
// contexts (TLS 1.2 minimum), certificate pinning, and handshake failures explained in words a
// user can act on. Contexts are built once at start-up and then only read (thread-safe).
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include <memory>
#include <string>
#include <vector>

#include "airlock/error.h"

namespace airlock::tls {

struct ServerCertFiles {
  std::string ca_file;         // PEM, for connectors to trust (--ca-file)
  std::string cert_file;       // PEM chain: server certificate then CA
  std::string key_file;        // PEM private key, mode 0600
  std::string ca_fingerprint;  // "sha256:<hex>" of the CA certificate (--pin-sha256)
  bool created = false;        // true when this call generated the CA
};

// Ensures `state_dir` holds a CA and a server certificate for `hostnames` (DNS names or IP
// literals). Creates the CA on first use; re-issues the server certificate when the names
// change. Throws std::runtime_error naming the file or OpenSSL call that failed.
ServerCertFiles ensure_self_managed_certs(const std::string& state_dir,
                                          const std::vector<std::string>& hostnames);

// A certificate authority that lives in memory only, for one sandbox's egress proxy
// (sandbox/http_credentials.h): its key is made here and never leaves the object. Not
// thread-safe; its owner's thread only.
class MemoryCa {
 public:
  // Throws std::runtime_error naming the OpenSSL call that failed.
  MemoryCa(const std::string& common_name, long days);
  ~MemoryCa();
  MemoryCa(const MemoryCa&) = delete;
  MemoryCa& operator=(const MemoryCa&) = delete;

  const std::string& certificate_pem() const { return certificate_pem_; }
  // A TLS server context presenting a certificate for `host` (a DNS name or an IP literal),
  // signed by this CA, made on first use and kept. Throws std::runtime_error.
  std::shared_ptr<boost::asio::ssl::context> server_context_for(const std::string& host);

 private:
  EVP_PKEY* key_ = nullptr;       // the CA's
  EVP_PKEY* leaf_key_ = nullptr;  // one key for every certificate it issues
  X509* certificate_ = nullptr;
  long days_;
  std::string certificate_pem_;
  std::vector<std::pair<std::string, std::shared_ptr<boost::asio::ssl::context>>> contexts_;
};

// "sha256:<64 lowercase hex>" of a PEM certificate file's first certificate.
std::string file_fingerprint(const std::string& pem_file);
std::string cert_fingerprint(X509* cert);
// Normalises a user-given pin ("sha256:AB:CD…", "abcd…") to "sha256:<hex>"; empty if malformed.
std::string normalize_pin(const std::string& pin);

std::shared_ptr<boost::asio::ssl::context> make_server_context(const std::string& cert_file,
                                                               const std::string& key_file);

struct ClientOptions {
  std::string ca_file;               // trust only this CA (PEM)
  std::string pin_sha256;            // trust a chain containing this certificate
  bool insecure_skip_verify = false; // trust anything: for experiments only, logged loudly
};

std::shared_ptr<boost::asio::ssl::context> make_client_context(const ClientOptions& options);
// Sets SNI (for DNS names) and the name the certificate must match. Call before the handshake.
void prepare_client(SSL* ssl, const std::string& host, const ClientOptions& options);
// After the handshake: checks the pin when one is configured. Empty string when fine,
// otherwise a message saying what the server presented and what was expected.
std::string check_pin(SSL* ssl, const std::string& host, const ClientOptions& options);
// Turns a failed handshake into an actionable message (unknown CA, name mismatch, expired…).
std::string describe_handshake_failure(SSL* ssl, const boost::system::error_code& ec,
                                       const std::string& host, const ClientOptions& options);

}  // namespace airlock::tls
