#include "common/secrets.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/config_util.h"
#include "test/e2e/temp_dir.h"

namespace airlock::secrets {
namespace {
namespace fs = std::filesystem;

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string error_of(SecretStore& store) {
  try {
    store.load();
  } catch (const SecretError& e) {
    return e.what();
  }
  return "";
}

TEST(Secrets, FileSourceTrimsOneTrailingNewlineOnly) {
  test::TempDir d;
  write_file(d.path + "/a", "first-secret-value\n");
  write_file(d.path + "/b", "second-secret-value\n\n");
  SecretStore store(std::vector<SourceSpec>{{"a", "file:" + d.path + "/a"}, {"b", "file:" + d.path + "/b"}});
  store.load();
  auto set = store.current();
  ASSERT_TRUE(set);
  EXPECT_EQ(set->find("a")->view(), "first-secret-value");
  EXPECT_EQ(set->find("b")->view(), "second-secret-value\n");
  EXPECT_EQ(set->origin.at("a"), "file:" + d.path + "/a");
  EXPECT_EQ(set->find("c"), nullptr);
}

TEST(Secrets, ShortMissingAndOversizedSecretsAreRefusedWithTheReason) {
  test::TempDir d;
  write_file(d.path + "/short", "1234567\n");
  SecretStore short_one(std::vector<SourceSpec>{{"pin", "file:" + d.path + "/short"}});
  const std::string e1 = error_of(short_one);
  EXPECT_NE(e1.find("secret 'pin'"), std::string::npos) << e1;
  EXPECT_NE(e1.find("7 bytes"), std::string::npos) << e1;
  EXPECT_NE(e1.find("at least 8"), std::string::npos) << e1;

  SecretStore missing(std::vector<SourceSpec>{{"gone", "file:" + d.path + "/nope"}});
  EXPECT_NE(error_of(missing).find("cannot open " + d.path + "/nope"), std::string::npos);

  write_file(d.path + "/big", std::string(kMaxSecretSize + 10, 'x'));
  SecretStore big(std::vector<SourceSpec>{{"big", "file:" + d.path + "/big"}});
  EXPECT_NE(error_of(big).find("the limit is"), std::string::npos);

  SecretStore unset(std::vector<SourceSpec>{{"e", "env:AIRLOCK_TEST_UNSET_VARIABLE"}});
  EXPECT_NE(error_of(unset).find("AIRLOCK_TEST_UNSET_VARIABLE is not set"), std::string::npos);
}

TEST(Secrets, EnvSourceIsReadOnceAndRemovedFromTheEnvironment) {
  ::setenv("AIRLOCK_TEST_SECRET_ENV", "env-secret-value-42", 1);
  SecretStore store(std::vector<SourceSpec>{{"from-env", "env:AIRLOCK_TEST_SECRET_ENV"}});
  store.load();
  EXPECT_EQ(std::getenv("AIRLOCK_TEST_SECRET_ENV"), nullptr);  // children cannot inherit it
  EXPECT_EQ(store.current()->find("from-env")->view(), "env-secret-value-42");
  std::string error;
  ASSERT_TRUE(store.reload(error)) << error;  // the value read at load stays
  EXPECT_EQ(store.current()->find("from-env")->view(), "env-secret-value-42");
}

TEST(Secrets, DirSourceLoadsEachFileAndSkipsHiddenEntriesAndSubdirectories) {
  test::TempDir d;
  fs::create_directories(d.path + "/..2026_11_27/sub");
  write_file(d.path + "/..2026_11_27/crm-a", "crm-a-token-value\n");
  fs::create_symlink("..2026_11_27/crm-a", d.path + "/crm-a");  // Kubernetes' layout
  write_file(d.path + "/crm-b", "crm-b-token-value");
  write_file(d.path + "/.hidden", "hidden-token-value");
  fs::create_directory(d.path + "/nested");
  SecretStore store(std::vector<SourceSpec>{{"", "dir:" + d.path}});
  store.load();
  EXPECT_EQ(store.current()->names(), (std::vector<std::string>{"crm-a", "crm-b"}));
  EXPECT_EQ(store.current()->find("crm-a")->view(), "crm-a-token-value");
  EXPECT_EQ(store.watched_directories(), std::vector<std::string>{d.path});

  write_file(d.path + "/bad name", "whatever-value");
  SecretStore bad(std::vector<SourceSpec>{{"", "dir:" + d.path}});
  EXPECT_NE(error_of(bad).find("'bad name' is not a valid secret name"), std::string::npos);
}

TEST(Secrets, TheSameNameFromTwoSourcesIsRefused) {
  test::TempDir d;
  write_file(d.path + "/token", "dir-token-value");
  write_file(d.path + "/../airlock-token-" + std::to_string(::getpid()), "file-token-value");
  const std::string single = fs::path(d.path).parent_path().string() + "/airlock-token-" +
                             std::to_string(::getpid());
  SecretStore store(std::vector<SourceSpec>{{"", "dir:" + d.path}, {"token", "file:" + single}});
  const std::string e = error_of(store);
  fs::remove(single);
  EXPECT_NE(e.find("secret 'token' is defined twice"), std::string::npos) << e;
}

TEST(Secrets, ReloadSwapsWholeSetsKeepsEarlierValuesRedactedAndSurvivesBadFiles) {
  test::TempDir d;
  const std::string f = d.path + "/api";
  write_file(f, "old-api-key-value\n");
  SecretStore store(std::vector<SourceSpec>{{"api", "file:" + f}});
  store.load();
  const uint64_t g1 = store.current()->generation;

  std::string error;
  std::vector<std::string> changed;
  ASSERT_TRUE(store.reload(error, &changed));
  EXPECT_TRUE(changed.empty());
  EXPECT_EQ(store.current()->generation, g1);  // nothing changed, nothing rebuilt

  write_file(f, "new-api-key-value\n");
  ASSERT_TRUE(store.reload(error, &changed)) << error;
  EXPECT_EQ(changed, std::vector<std::string>{"api"});
  auto set = store.current();
  EXPECT_EQ(set->find("api")->view(), "new-api-key-value");
  EXPECT_GT(set->generation, g1);
  // The old value is still caught: an upstream may echo it for a while.
  EXPECT_EQ(redact::redact(set->patterns, "a old-api-key-value b new-api-key-value"),
            "a [REDACTED:api] b [REDACTED:api]");

  write_file(f, "short\n");  // a bad reload changes nothing
  EXPECT_FALSE(store.reload(error));
  EXPECT_NE(error.find("5 bytes"), std::string::npos) << error;
  EXPECT_EQ(store.current()->find("api")->view(), "new-api-key-value");
  EXPECT_EQ(store.current()->generation, set->generation);

  // Only kPreviousValuesKept earlier values are remembered.
  for (int i = 0; i < 4; ++i) {
    write_file(f, "rotation-value-" + std::to_string(i));
    ASSERT_TRUE(store.reload(error)) << error;
  }
  const auto& p = store.current()->patterns;
  EXPECT_EQ(p->secret_count(), 1 + kPreviousValuesKept);
  EXPECT_EQ(redact::redact(p, "rotation-value-1"), "[REDACTED:api]");
  EXPECT_EQ(redact::redact(p, "old-api-key-value"), "old-api-key-value");
}

TEST(Secrets, TemplatesExpandNamedAndPerAgentSecrets) {
  test::TempDir d;
  write_file(d.path + "/t", "token-value-123");
  write_file(d.path + "/crm-a", "crm-agent-a-value");
  SecretStore store(std::vector<SourceSpec>{{"", "dir:" + d.path}});
  store.load();
  auto set = store.current();
  std::string out, error;
  ASSERT_TRUE(expand("Bearer ${secret:t}", *set, nullptr, out, error)) << error;
  EXPECT_EQ(out, "Bearer token-value-123");
  ASSERT_TRUE(expand("${agent_secret}|$x|${secret:t}", *set, set->find("crm-a"), out, error));
  EXPECT_EQ(out, "crm-agent-a-value|$x|token-value-123");
  EXPECT_FALSE(expand("${secret:nope}", *set, nullptr, out, error));
  EXPECT_EQ(error, "secret 'nope' is not loaded");
  EXPECT_FALSE(expand("${agent_secret}", *set, nullptr, out, error));
  EXPECT_NE(error.find("no per-agent credential"), std::string::npos);

  auto refs = parse_template("a ${secret:x} ${agent_secret} ${secret:x} ${secret:y}", "h");
  EXPECT_EQ(refs.secrets, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(refs.agent_secret);
  EXPECT_THROW(parse_template("${secret:}", "h"), ConfigError);
  EXPECT_THROW(parse_template("${SECRET:x}", "h"), ConfigError);
}

TEST(Secrets, ValuesLiveInPagesOfTheirOwn) {
  SecretValue v("page-held-secret");
  EXPECT_EQ(v.view(), "page-held-secret");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.view().data()) % 4096, 0u);
}

}  // namespace
}  // namespace airlock::secrets
