#include "common/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/token.h"

namespace airlock::tls {
namespace fs = std::filesystem;
namespace ssl = boost::asio::ssl;

namespace {

std::string openssl_error(const std::string& what) {
  std::string msg = what;
  if (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    msg += ": ";
    msg += buf;
  }
  ERR_clear_error();
  return msg;
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(openssl_error(what)); }

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

struct PkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct X509Free { void operator()(X509* p) const { X509_free(p); } };
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) fail("X509V3_EXT_conf_nid(" + std::string(OBJ_nid2sn(nid)) + ", " + value + ")");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

X509Ptr make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer,
                  long days) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  const std::string serial_hex = random_hex(16);
  BIGNUM* bn = nullptr;
  BN_hex2bn(&bn, serial_hex.c_str());
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * 86400L);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Airlock"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  return cert;
}

void sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) fail("X509_sign");
}

void write_file(const std::string& path, const std::string& data, mode_t mode) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + tmp);
    f << data;
  }
  if (chmod(tmp.c_str(), mode) != 0) throw std::runtime_error("chmod " + tmp + " failed");
  fs::rename(tmp, path);
}

std::string pem_of(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, n);
  BIO_free(bio);
  return out;
}

std::string pem_of(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, n);
  BIO_free(bio);
  return out;
}

X509Ptr read_cert(const std::string& path) {
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open certificate " + path);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (!cert) fail("cannot parse certificate " + path);
  return X509Ptr(cert);
}

PkeyPtr read_key(const std::string& path) {
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open private key " + path);
  EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (!key) fail("cannot parse private key " + path);
  return PkeyPtr(key);
}

PkeyPtr new_key() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (!key) fail("EVP_EC_gen(P-256)");
  return PkeyPtr(key);
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string join_sans(const std::vector<std::string>& hostnames) {
  std::string sans;
  for (const auto& h : hostnames) {
    sans += (sans.empty() ? "" : ",") + std::string(is_ip_literal(h) ? "IP:" : "DNS:") + h;
  }
  return sans;
}

}  // namespace

std::string cert_fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), md, &n);
  return "sha256:" + to_hex(std::string_view(reinterpret_cast<char*>(md), n));
}

std::string file_fingerprint(const std::string& pem_file) {
  return cert_fingerprint(read_cert(pem_file).get());
}

std::string normalize_pin(const std::string& pin) {
  std::string s = pin;
  if (s.rfind("sha256:", 0) == 0 || s.rfind("SHA256:", 0) == 0) s = s.substr(7);
  std::string hex;
  for (char c : s) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return {};
    hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return hex.size() == 64 ? "sha256:" + hex : std::string{};
}

ServerCertFiles ensure_self_managed_certs(const std::string& state_dir,
                                          const std::vector<std::string>& hostnames) {
  ServerCertFiles files;
  files.ca_file = state_dir + "/ca.pem";
  const std::string ca_key_file = state_dir + "/ca.key";
  files.cert_file = state_dir + "/server.pem";
  files.key_file = state_dir + "/server.key";
  const std::string sans_file = state_dir + "/server.names";
  const std::string sans = join_sans(hostnames);

  X509Ptr ca;
  PkeyPtr ca_key;
  if (fs::exists(files.ca_file) && fs::exists(ca_key_file)) {
    ca = read_cert(files.ca_file);
    ca_key = read_key(ca_key_file);
  } else {
    ca_key = new_key();
    ca = make_cert(ca_key.get(), "Airlock CA", nullptr, 3650);
    add_ext(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_ext(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
    sign(ca.get(), ca_key.get());
    write_file(ca_key_file, pem_of(ca_key.get()), 0600);
    write_file(files.ca_file, pem_of(ca.get()), 0644);
    files.created = true;
    fs::remove(sans_file);
  }
  files.ca_fingerprint = cert_fingerprint(ca.get());

  if (!fs::exists(files.cert_file) || !fs::exists(files.key_file) ||
      read_text(sans_file) != sans) {
    PkeyPtr key = new_key();
    X509Ptr cert = make_cert(key.get(), hostnames.empty() ? "airlockd" : hostnames.front(),
                             ca.get(), 825);
    add_ext(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature");
    add_ext(cert.get(), ca.get(), NID_ext_key_usage, "serverAuth");
    add_ext(cert.get(), ca.get(), NID_authority_key_identifier, "keyid");
    if (!sans.empty()) add_ext(cert.get(), ca.get(), NID_subject_alt_name, sans);
    sign(cert.get(), ca_key.get());
    write_file(files.key_file, pem_of(key.get()), 0600);
    write_file(files.cert_file, pem_of(cert.get()) + pem_of(ca.get()), 0644);
    write_file(sans_file, sans, 0644);
  }
  return files;
}

MemoryCa::MemoryCa(const std::string& common_name, long days) : days_(days) {
  PkeyPtr key = new_key();
  PkeyPtr leaf_key = new_key();
  X509Ptr ca = make_cert(key.get(), common_name, nullptr, days);
  add_ext(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_ext(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
  sign(ca.get(), key.get());
  certificate_pem_ = pem_of(ca.get());
  key_ = key.release();
  leaf_key_ = leaf_key.release();
  certificate_ = ca.release();
}

MemoryCa::~MemoryCa() {
  contexts_.clear();
  X509_free(certificate_);
  EVP_PKEY_free(leaf_key_);
  EVP_PKEY_free(key_);
}

std::shared_ptr<ssl::context> MemoryCa::server_context_for(const std::string& host) {
  for (const auto& [name, ctx] : contexts_) {
    if (name == host) return ctx;
  }
  X509Ptr cert = make_cert(leaf_key_, host, certificate_, days_);
  add_ext(cert.get(), certificate_, NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), certificate_, NID_key_usage, "critical,digitalSignature");
  add_ext(cert.get(), certificate_, NID_ext_key_usage, "serverAuth");
  add_ext(cert.get(), certificate_, NID_authority_key_identifier, "keyid");
  add_ext(cert.get(), certificate_, NID_subject_alt_name, join_sans({host}));
  sign(cert.get(), key_);
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression);
  if (SSL_CTX_use_certificate(ctx->native_handle(), cert.get()) != 1) fail("SSL_CTX_use_certificate");
  if (SSL_CTX_use_PrivateKey(ctx->native_handle(), leaf_key_) != 1) fail("SSL_CTX_use_PrivateKey");
  contexts_.emplace_back(host, ctx);
  return ctx;
}

std::shared_ptr<ssl::context> make_server_context(const std::string& cert_file,
                                                  const std::string& key_file) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                   ssl::context::single_dh_use);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) throw std::runtime_error(openssl_error("cannot load certificate chain " + cert_file));
  ctx->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) throw std::runtime_error(openssl_error("cannot load private key " + key_file));
  return ctx;
}

std::shared_ptr<ssl::context> make_client_context(const ClientOptions& options) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  if (!options.ca_file.empty()) {
    ctx->load_verify_file(options.ca_file, ec);
    if (ec) throw std::runtime_error(openssl_error("cannot load CA file " + options.ca_file));
    ctx->set_verify_mode(ssl::verify_peer);
  } else if (!options.pin_sha256.empty() || options.insecure_skip_verify) {
    // The pin is checked after the handshake, before a single byte (the token) is sent.
    ctx->set_verify_mode(ssl::verify_none);
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) throw std::runtime_error(openssl_error("cannot load the system CA store"));
    ctx->set_verify_mode(ssl::verify_peer);
  }
  return ctx;
}

void prepare_client(SSL* ssl, const std::string& host, const ClientOptions& options) {
  if (!is_ip_literal(host)) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (options.insecure_skip_verify || !options.pin_sha256.empty()) return;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (is_ip_literal(host)) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  }
}

std::string check_pin(SSL* ssl, const std::string& host, const ClientOptions& options) {
  if (options.pin_sha256.empty() || options.insecure_skip_verify) return {};
  const std::string want = normalize_pin(options.pin_sha256);
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  X509* leaf = SSL_get0_peer_certificate(ssl);
  if (!chain || !leaf) return "the server presented no certificate";
  std::string seen;
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    X509* cert = sk_X509_value(chain, i);
    const std::string fp = cert_fingerprint(cert);
    seen += (seen.empty() ? "" : ", ") + fp;
    if (fp != want) continue;
    if (cert == leaf || X509_cmp(cert, leaf) == 0) return {};
    // The pin names a CA in the chain: the leaf must really chain to it, for this host.
    // Merely including a public CA certificate in a chain proves nothing.
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, cert);
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf, chain);
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
    if (is_ip_literal(host)) {
      X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    }
    const int ok = X509_verify_cert(ctx);
    const int err = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    if (ok == 1) return {};
    return "certificate pin matched a CA in the chain but the server certificate does not "
           "verify against it for '" + host + "': " + X509_verify_cert_error_string(err);
  }
  return "certificate pin mismatch: the server presented " + seen + " but --pin-sha256 is " +
         want + "; check that you pinned the fingerprint airlockd printed at start-up";
}

std::string describe_handshake_failure(SSL* ssl, const boost::system::error_code& ec,
                                       const std::string& host, const ClientOptions& options) {
  const long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  const std::string trust = options.ca_file.empty() ? "the system CA store"
                                                    : "the CA in " + options.ca_file;
  switch (vr) {
    case X509_V_OK:
      break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return "TLS verification failed: name mismatch: the server certificate is not valid for '" +
             host + "'; connect with a name the certificate lists, or add '" + host +
             "' to airlockd's tls.hostnames";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return "TLS verification failed: unknown CA: the server certificate is not signed by " +
             trust + " (" + X509_verify_cert_error_string(vr) +
             "); pass airlockd's CA with --ca-file or its fingerprint with --pin-sha256";
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return std::string("TLS verification failed: ") + X509_verify_cert_error_string(vr) +
             "; check the clocks of both machines and the certificate's validity";
    default:
      return std::string("TLS verification failed: ") + X509_verify_cert_error_string(vr);
  }
  return "TLS handshake with " + host + " failed: " + ec.message() +
         " (is the endpoint a TLS server? for a plain-HTTP airlockd use ws://)";
}

}  // namespace airlock::tls
