#include "sandbox/config.h"

#include <gtest/gtest.h>

#include "common/config_util.h"

namespace airlock::sandbox {
namespace {

TEST(SandboxQuantities, CpuInCoresOrMillicores) {
  EXPECT_EQ(parse_cpu_quantity("2"), 2000u);
  EXPECT_EQ(parse_cpu_quantity("0.5"), 500u);
  EXPECT_EQ(parse_cpu_quantity("500m"), 500u);
  EXPECT_EQ(parse_cpu_quantity("1.25"), 1250u);
  EXPECT_EQ(parse_cpu_quantity("0.0001"), 1u);  // rounded up, never to zero
  for (const char* bad : {"", "m", "-1", "2 cores", "500M", "0", "0m", "1e", "abc"}) {
    EXPECT_FALSE(parse_cpu_quantity(bad)) << bad;
  }
}

TEST(SandboxQuantities, MemoryInKubernetesSyntax) {
  EXPECT_EQ(parse_memory_quantity("4Gi"), 4ull << 30);
  EXPECT_EQ(parse_memory_quantity("512Mi"), 512ull << 20);
  EXPECT_EQ(parse_memory_quantity("1G"), 1000000000ull);
  EXPECT_EQ(parse_memory_quantity("128M"), 128000000ull);
  EXPECT_EQ(parse_memory_quantity("64Ki"), 65536ull);
  EXPECT_EQ(parse_memory_quantity("1k"), 1000ull);
  EXPECT_EQ(parse_memory_quantity("1.5Gi"), 3ull << 29);
  EXPECT_EQ(parse_memory_quantity("1e9"), 1000000000ull);
  EXPECT_EQ(parse_memory_quantity("2E"), 2000000000000000000ull);
  EXPECT_EQ(parse_memory_quantity("123456"), 123456ull);
  for (const char* bad : {"", "Gi", "4GB", "4gi", "-1Gi", "4 Gi", "0", "1x", "99999E"}) {
    EXPECT_FALSE(parse_memory_quantity(bad)) << bad;
  }
  EXPECT_EQ(format_bytes(4ull << 30), "4Gi");
  EXPECT_EQ(format_bytes(1000), "1000");
  EXPECT_EQ(format_cpu(500), "500m");
  EXPECT_EQ(format_cpu(2000), "2");
}

TEST(SandboxConfig, AcceptsTheSeedShapeVerbatim) {
  const auto c = parse_sandbox_config(R"(
sandbox:
  type: self-hosted
  image: my-registry/tool-executor:latest
  resources:
    cpu: "2"
    memory: "4Gi"
  network:
    allowed_outbound: ["*.internal-api.example.com"]
  credentials:
    - secret: "my-api-key"
      env_var: "API_KEY"
secrets:
  - name: my-api-key
    from: env:MY_API_KEY
)", "sandbox.yaml");
  EXPECT_EQ(c.image, "my-registry/tool-executor:latest");
  EXPECT_EQ(c.resources.cpu_millis, 2000u);
  EXPECT_EQ(c.resources.memory_bytes, 4ull << 30);
  EXPECT_EQ(c.resources.pids, 256u);
  EXPECT_EQ(c.resources.wall_time, std::chrono::seconds(300));
  EXPECT_EQ(c.resources.output_limit, 10u << 20);
  ASSERT_EQ(c.allowed_outbound.size(), 1u);
  ASSERT_EQ(c.credentials.size(), 1u);
  EXPECT_EQ(c.credentials[0].env_var, "API_KEY");
}

TEST(SandboxConfig, ErrorsNameTheKeyAndTheProblem) {
  auto error_of = [](const std::string& yaml) {
    try {
      parse_sandbox_config(yaml, "sandbox.yaml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto has = [](const std::string& text, const std::string& needle) {
    return text.find(needle) != std::string::npos;
  };
  EXPECT_TRUE(has(error_of("sandbox:\n  imagee: x\n"), "imagee")) << error_of("sandbox:\n  imagee: x\n");
  EXPECT_TRUE(has(error_of("sandbox:\n  type: cloud\n"), "sandbox.type 'cloud'"));
  EXPECT_TRUE(has(error_of("sandbox:\n  resources:\n    cpu: 2 cores\n"), "sandbox.resources.cpu"));
  EXPECT_TRUE(has(error_of("sandbox:\n  resources:\n    memory: 4GB\n"), "\"4Gi\""));
  EXPECT_TRUE(has(error_of("sandbox:\n  resources:\n    memory: 1Mi\n"), "below 4Mi"));
  EXPECT_TRUE(has(error_of("sandbox:\n  resources:\n    pids: 1\n"), "at least 2"));
  EXPECT_TRUE(has(error_of("sandbox:\n  network:\n    allowed_outbound: ['*']\n"),
                  "allowed_outbound[0]"));
  EXPECT_TRUE(has(error_of("sandbox:\n  network:\n    allowed_outbound: ['a.*.com']\n"),
                  "first label"));
  EXPECT_TRUE(has(error_of("sandbox:\n  credentials:\n    - secret: k1\n      env_var: K\n"),
                  "'k1' is not among 'secrets:'"));
  EXPECT_TRUE(has(error_of("secrets:\n  - {name: k1, from: env:X}\nsandbox:\n  credentials:\n"
                           "    - {secret: k1, env_var: K}\n    - {secret: k1, env_var: K}\n"),
                  "set twice"));
  EXPECT_TRUE(has(error_of("sandbox:\n  env:\n    X: '${secret:k}'\n"), "credentials"));
  EXPECT_TRUE(has(error_of("sandbox:\n  name: 'bad name'\n"), "hostname label"));
  EXPECT_TRUE(has(error_of("other: 1\n"), "other"));
  EXPECT_TRUE(has(error_of("sandbox: [1\n"), "sandbox.yaml"));
}

TEST(SandboxConfig, HostBoundHttpCredentials) {
  // The issue's shape, verbatim, with the secret it names.
  const std::string base =
      "secrets:\n  - {name: my-api-key, from: env:API_KEY}\nsandbox:\n  network:\n"
      "    allowed_outbound: ['*.internal-api.example.com', 'other.example.com:8443']\n";
  const SandboxConfig c = parse_sandbox_config(
      base + "  http_credentials:\n    - host: \"*.internal-api.example.com\"\n"
             "      header: Authorization\n      value: \"Bearer ${secret:my-api-key}\"\n",
      "sandbox.yaml");
  ASSERT_EQ(c.http_credentials.size(), 1u);
  EXPECT_EQ(c.http_credentials[0].header, "Authorization");
  EXPECT_EQ(c.http_credentials[0].value, "Bearer ${secret:my-api-key}");
  EXPECT_EQ(c.http_credentials[0].target.kind, AllowEntry::Kind::kSubdomains);
  EXPECT_EQ(c.http_credentials[0].target.name, "internal-api.example.com");

  auto error_of = [&](const std::string& entries) {
    try {
      parse_sandbox_config(base + "  http_credentials:\n" + entries, "sandbox.yaml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto expect_error = [&](const std::string& entries, const std::string& needle) {
    const std::string e = error_of(entries);
    EXPECT_NE(e.find(needle), std::string::npos) << entries << " -> " << e;
  };
  const std::string ok_value = "value: 'Bearer ${secret:my-api-key}'";
  expect_error("    - {host: a.internal-api.example.com, header: X-Key}\n",
               "http_credentials[0].value is required");
  expect_error("    - {host: a.internal-api.example.com, header: X-Key, " + ok_value + ", tls: 1}\n",
               "tls");
  expect_error("    - {host: 10.0.0.1, header: X-Key, " + ok_value + "}\n", "must be a host name");
  expect_error("    - {host: 'a.*.com', header: X-Key, " + ok_value + "}\n", "http_credentials[0].host");
  expect_error("    - {host: elsewhere.example.com, header: X-Key, " + ok_value + "}\n",
               "can never be reached");
  expect_error("    - {host: 'other.example.com:443', header: X-Key, " + ok_value + "}\n",
               "can never be reached");
  expect_error("    - {host: a.internal-api.example.com, header: 'X Key', " + ok_value + "}\n",
               "not an HTTP field name");
  expect_error("    - {host: a.internal-api.example.com, header: Host, " + ok_value + "}\n",
               "set by the proxy itself");
  expect_error("    - {host: a.internal-api.example.com, header: X-Key, value: literal}\n",
               "must refer to a secret");
  expect_error("    - {host: a.internal-api.example.com, header: X-Key, value: '${secret:nope}'}\n",
               "'nope', which is not among 'secrets:'");
  expect_error("    - {host: a.internal-api.example.com, header: X-Key, value: '${agent_secret}'}\n",
               "agent_secret");
  expect_error("    - {host: a.internal-api.example.com, header: X-Key, " + ok_value +
                   ", ca_file: /nonexistent/ca.pem}\n",
               "ca_file '/nonexistent/ca.pem' cannot be read");
  expect_error("    - {host: a.internal-api.example.com, header: X-Key, " + ok_value + "}\n"
               "    - {host: A.internal-api.example.com., header: x-key, " + ok_value + "}\n",
               "again");
  // A secret handed to the sandbox as an environment variable cannot also be host-bound.
  const std::string with_env =
      base + "  credentials:\n    - {secret: my-api-key, env_var: API_KEY}\n"
             "  http_credentials:\n    - {host: a.internal-api.example.com, header: X-Key, " +
      ok_value + "}\n";
  try {
    parse_sandbox_config(with_env, "sandbox.yaml");
    ADD_FAILURE() << "a secret both in the environment and host-bound was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("must never enter it"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace airlock::sandbox
