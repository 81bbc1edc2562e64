#include "sandbox/client_hello.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

namespace airlock::sandbox {
namespace {

// A real ClientHello, as OpenSSL's client sends it (with SNI `host`, or none when empty).
std::string openssl_client_hello(const std::string& host) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  if (!host.empty()) SSL_set_tlsext_host_name(ssl, host.c_str());
  SSL_connect(ssl);  // wants to read the ServerHello; the ClientHello is in `out`
  std::string bytes;
  char buf[4096];
  for (int n; (n = BIO_read(out, buf, sizeof buf)) > 0;) bytes.append(buf, static_cast<size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return bytes;
}

TEST(ClientHello, ReadsTheServerNameFromARealHelloFedInAnyPieces) {
  const std::string hello = openssl_client_hello("api.internal.example.com");
  ASSERT_GT(hello.size(), 100u);
  for (size_t cut = 0; cut < hello.size(); ++cut) {
    EXPECT_EQ(parse_client_hello(hello.substr(0, cut)).state, HelloParse::State::kNeedMore) << cut;
  }
  const auto r = parse_client_hello(hello);
  ASSERT_EQ(r.state, HelloParse::State::kSni) << r.error;
  EXPECT_EQ(r.server_name, "api.internal.example.com");
  // Bytes after the hello (early data, the next record) do not matter.
  EXPECT_EQ(parse_client_hello(hello + "garbage").server_name, "api.internal.example.com");
}

TEST(ClientHello, HelloSplitAcrossTwoRecords) {
  const std::string hello = openssl_client_hello("split.example.com");
  const std::string body = hello.substr(5);
  const size_t half = body.size() / 2;
  auto record = [&](const std::string& part) {
    std::string r = hello.substr(0, 3);
    r.push_back(static_cast<char>(part.size() >> 8));
    r.push_back(static_cast<char>(part.size() & 0xff));
    return r + part;
  };
  const std::string two = record(body.substr(0, half)) + record(body.substr(half));
  EXPECT_EQ(parse_client_hello(two.substr(0, two.size() - 1)).state, HelloParse::State::kNeedMore);
  const auto r = parse_client_hello(two);
  ASSERT_EQ(r.state, HelloParse::State::kSni) << r.error;
  EXPECT_EQ(r.server_name, "split.example.com");
}

TEST(ClientHello, NoSniNotTlsAndMalformed) {
  EXPECT_EQ(parse_client_hello(openssl_client_hello("")).state, HelloParse::State::kNoSni);
  EXPECT_EQ(parse_client_hello("GET / HTTP/1.1\r\n\r\n").state, HelloParse::State::kNotTls);
  EXPECT_EQ(parse_client_hello("G").state, HelloParse::State::kNotTls);
  std::string hello = openssl_client_hello("x.example.com");
  std::string bad = hello;
  bad[5] = 0x02;  // a ServerHello where a ClientHello belongs
  EXPECT_EQ(parse_client_hello(bad).state, HelloParse::State::kMalformed);
  bad = hello;
  bad[3] = 0x7f;  // record longer than any TLS record may be
  bad[4] = 0x7f;
  EXPECT_EQ(parse_client_hello(bad).state, HelloParse::State::kMalformed);
  // Every single-byte corruption gives an answer without reading out of bounds (ASan checks).
  for (size_t i = 0; i < hello.size(); ++i) {
    std::string c = hello;
    c[i] = static_cast<char>(c[i] ^ 0x5a);
    (void)parse_client_hello(c);
  }
}

}  // namespace
}  // namespace airlock::sandbox
