#include "controlplane/console.h"

#include <gtest/gtest.h>

namespace airlock::controlplane {
namespace {

std::string_view file(std::string_view path) {
  for (const auto& f : embedded_files()) {
    if (f.path == path) return f.data;
  }
  return {};
}

TEST(Console, TheDeploymentTemplatesAreCompiledInAndFilledIn) {
  const auto tmpl = file("deploy/sandbox-deployment.yaml");
  ASSERT_FALSE(tmpl.empty());
  const std::string out =
      fill_deployment(tmpl, "sandbox", "alk_abc_def", "wss://airlock.corp:9443/v1/connect",
                      "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                      "sandbox:\n  type: self-hosted\n  image: host\n");
  EXPECT_NE(out.find("token: \"alk_abc_def\""), std::string::npos);
  EXPECT_EQ(out.find("REPLACE-with-the-token"), std::string::npos);
  EXPECT_NE(out.find("- wss://airlock.corp:9443/v1/connect"), std::string::npos);
  EXPECT_EQ(out.find("airlock.example.com:8443"), std::string::npos);
  // The config block is replaced whole, indented under its key; the rest of the file stays.
  EXPECT_NE(
      out.find("  sandbox.yaml: |\n    sandbox:\n      type: self-hosted\n      image: host\n"),
      std::string::npos)
      << out.substr(0, 3000);
  EXPECT_EQ(out.find("tool-executor:1.4"), std::string::npos);
  EXPECT_NE(out.find("  airlockd-ca.pem: |\n    -----BEGIN CERTIFICATE-----\n    MIIB\n"),
            std::string::npos);
  EXPECT_NE(out.find("kind: Deployment"), std::string::npos);
  // The credentials the operator must supply are still marked.
  EXPECT_NE(out.find("REPLACE-with-the-api-key"), std::string::npos);

  const std::string tunnel = fill_deployment(
      file("deploy/mcp-tunnel-deployment.yaml"), "tunnel", "alk_t", "wss://h/v1/connect", "",
      "servers:\n  - {name: s, url: \"tcp://10.0.0.1:1\"}\n");
  EXPECT_NE(tunnel.find("token: \"alk_t\""), std::string::npos);
  EXPECT_NE(tunnel.find("  tunnel.yaml: |\n    servers:\n"), std::string::npos);
}

TEST(Console, EveryPageIsCompiledInWithNothingFromElsewhere) {
  for (const char* f : {"index.html", "console.js", "console.css", "favicon.svg"}) {
    ASSERT_FALSE(file(f).empty()) << f;
  }
  // The page and its styles name no other origin; the script imports nothing.
  EXPECT_EQ(file("index.html").find("://"), std::string_view::npos);
  EXPECT_EQ(file("console.css").find("://"), std::string_view::npos);
  EXPECT_EQ(file("console.css").find("@import"), std::string_view::npos);
  EXPECT_EQ(file("console.js").find("\nimport "), std::string_view::npos);
  // No markup is ever built from strings.
  EXPECT_EQ(file("console.js").find("innerHTML"), std::string_view::npos);
  EXPECT_EQ(file("console.js").find("insertAdjacentHTML"), std::string_view::npos);
}

TEST(Console, HeadersForbidInlineScriptFramingAndOtherOrigins) {
  HttpResponse r;
  add_console_headers(r);
  std::string csp;
  for (const auto& [k, v] : r.headers) {
    if (k == "Content-Security-Policy") csp = v;
  }
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos);
  EXPECT_NE(csp.find("script-src 'self';"), std::string::npos);
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos);
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
}

}  // namespace
}  // namespace airlock::controlplane
