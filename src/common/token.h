// Bearer tokens for connectors and admins: minted from the OS CSPRNG, shown once, stored only
// as a salted SHA-256 digest. Tokens carry 256 bits of entropy, so a fast salted hash is the
// right tool (a slow password KDF buys nothing against brute force here). Plain functions.
#pragma once

#include <string>
#include <string_view>

#include "airlock/error.h"
#include "common/encoding.h"

namespace airlock {

// "alk_<12 hex id>_<43 base64url secret>". The id finds the stored record without a scan.
struct MintedToken {
  std::string id;
  std::string token;  // the whole string handed to the user, once
};

struct StoredTokenHash {
  std::string salt_hex;
  std::string hash_hex;
};

MintedToken mint_token();
StoredTokenHash hash_token(std::string_view token);
// Recomputes the digest with the stored salt and compares in constant time.
bool verify_token(std::string_view token, const StoredTokenHash& stored);
// Extracts the id; an error when the string does not have the token's shape.
Result<std::string> token_id(std::string_view token);

std::string random_hex(size_t bytes);
// Unpadded URL-safe base64, the alphabet of token secrets.
std::string base64url(std::string_view bytes);

}  // namespace airlock
