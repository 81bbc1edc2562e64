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

}  // namespace
}  // namespace airlock::sandbox
