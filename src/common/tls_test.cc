#include "common/tls.h"

#include <gtest/gtest.h>

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
