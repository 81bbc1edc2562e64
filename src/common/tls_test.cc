#include "common/tls.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <filesystem>

#include "test/e2e/temp_dir.h"

namespace airlock::tls {
namespace {
namespace fs = std::filesystem;

using test::TempDir;

TEST(Tls, SelfManagedCaIsCreatedOnceAndKeysArePrivate) {
  TempDir dir;
  auto first = ensure_self_managed_certs(dir.path, {"localhost", "127.0.0.1"});
  EXPECT_TRUE(first.created);
  EXPECT_EQ(first.ca_fingerprint.size(), 7u + 64u);
  EXPECT_EQ(first.ca_fingerprint, file_fingerprint(first.ca_file));
  EXPECT_EQ(fs::status(dir.path + "/ca.key").permissions() & fs::perms::group_read, fs::perms::none);
  EXPECT_EQ(fs::status(first.key_file).permissions() & fs::perms::others_read, fs::perms::none);
  auto second = ensure_self_managed_certs(dir.path, {"localhost", "127.0.0.1"});
  EXPECT_FALSE(second.created);
  EXPECT_EQ(second.ca_fingerprint, first.ca_fingerprint);
  // New names: same CA, new server certificate.
  const auto before = file_fingerprint(first.cert_file);
  auto third = ensure_self_managed_certs(dir.path, {"airlock.example.com"});
  EXPECT_EQ(third.ca_fingerprint, first.ca_fingerprint);
  EXPECT_NE(file_fingerprint(third.cert_file), before);
  EXPECT_NO_THROW(make_server_context(third.cert_file, third.key_file));
}

// What a certificate `ctx` presents verifies against `ca_pem` for `host`: "" or why not.
std::string verify_presented(boost::asio::ssl::context& ctx, const std::string& ca_pem,
                             const std::string& host) {
  X509* leaf = SSL_CTX_get0_certificate(ctx.native_handle());
  if (!leaf) return "no certificate";
  BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
  X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* vctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(vctx, store, leaf, nullptr);
  X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(vctx), host.c_str(), host.size());
  const bool ok = X509_verify_cert(vctx) == 1;
  const std::string why = ok ? "" : X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx));
  X509_STORE_CTX_free(vctx);
  X509_STORE_free(store);
  X509_free(ca);
  return why;
}

TEST(Tls, MemoryCaIssuesPerHostCertificatesAndKeepsItsKey) {
  MemoryCa ca("test egress CA", 1);
  EXPECT_NE(ca.certificate_pem().find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(ca.certificate_pem().find("PRIVATE KEY"), std::string::npos);
  auto api = ca.server_context_for("api.internal.test");
  EXPECT_EQ(verify_presented(*api, ca.certificate_pem(), "api.internal.test"), "");
  // Valid for its name only, and only under this CA.
  EXPECT_NE(verify_presented(*api, ca.certificate_pem(), "other.internal.test"), "");
  MemoryCa other("another CA", 1);
  EXPECT_NE(verify_presented(*api, other.certificate_pem(), "api.internal.test"), "");
  // Made once per name.
  EXPECT_EQ(ca.server_context_for("api.internal.test"), api);
  EXPECT_NE(ca.server_context_for("b.internal.test"), api);
}

TEST(Tls, PinNormalisation) {
  const std::string hex(64, 'a');
  EXPECT_EQ(normalize_pin(hex), "sha256:" + hex);
  EXPECT_EQ(normalize_pin("SHA256:" + std::string(64, 'A')), "sha256:" + hex);
  std::string colons;
  for (int i = 0; i < 32; ++i) colons += (i ? ":" : "") + std::string("AA");
  EXPECT_EQ(normalize_pin(colons), "sha256:" + hex);
  EXPECT_EQ(normalize_pin("sha256:abc"), "");
  EXPECT_EQ(normalize_pin(std::string(64, 'g')), "");
}

}  // namespace
}  // namespace airlock::tls
