#include "common/token.h"

#include "common/encoding.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace airlock {
namespace {

constexpr std::string_view kPrefix = "alk_";
constexpr size_t kIdHexLen = 12;
constexpr size_t kSecretLen = 43;  // base64url of 32 bytes, unpadded

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed: the OS random source is unavailable");
  }
  return out;
}

std::string sha256(std::string_view a, std::string_view b) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, a.data(), a.size());
  EVP_DigestUpdate(ctx, b.data(), b.size());
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return std::string(reinterpret_cast<char*>(md), len);
}

int unhex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string from_hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(unhex(hex[i]) * 16 + unhex(hex[i + 1])));
  }
  return out;
}

}  // namespace

std::string base64url(std::string_view bytes) { return base64(bytes, /*url=*/true, /*pad=*/false); }

std::string random_hex(size_t bytes) { return to_hex(random_bytes(bytes)); }

MintedToken mint_token() {
  MintedToken t;
  t.id = random_hex(kIdHexLen / 2);
  t.token = std::string(kPrefix) + t.id + "_" + base64url(random_bytes(32));
  return t;
}

StoredTokenHash hash_token(std::string_view token) {
  StoredTokenHash h;
  const std::string salt = random_bytes(16);
  h.salt_hex = to_hex(salt);
  h.hash_hex = to_hex(sha256(salt, token));
  return h;
}

bool verify_token(std::string_view token, const StoredTokenHash& stored) {
  const std::string digest = to_hex(sha256(from_hex(stored.salt_hex), token));
  return digest.size() == stored.hash_hex.size() &&
         CRYPTO_memcmp(digest.data(), stored.hash_hex.data(), digest.size()) == 0;
}

Result<std::string> token_id(std::string_view token) {
  if (token.size() != kPrefix.size() + kIdHexLen + 1 + kSecretLen ||
      token.substr(0, kPrefix.size()) != kPrefix || token[kPrefix.size() + kIdHexLen] != '_') {
    return Errc::kInvalidArgument;
  }
  std::string_view id = token.substr(kPrefix.size(), kIdHexLen);
  for (char c : id) {
    if (unhex(c) < 0) return Errc::kInvalidArgument;
  }
  return std::string(id);
}

}  // namespace airlock
