#include <gtest/gtest.h>

#include <filesystem>

#include "test/e2e/temp_dir.h"

#include "controlplane/store.h"

namespace airlock::controlplane {
namespace {
namespace fs = std::filesystem;

using test::TempDir;

TEST(SqliteStore, MigratesAndPersists) {
  TempDir dir;
  const std::string db = dir.path + "/a.db";
  {
    auto s = open_sqlite_store(db);
    EXPECT_EQ(s->schema_version(), 3);
    ASSERT_TRUE(s->create_resource("tunnel", "sales"));
    EXPECT_EQ(s->create_resource("tunnel", "sales").error(), Errc::kAlreadyExists);
    ASSERT_TRUE(s->create_resource("sandbox", "sales"));  // names are per kind
    ASSERT_TRUE(s->record_seen("tunnel", "sales", 1234, "mcp-tunnel/x", "127.0.0.1:1"));
    EXPECT_EQ(s->record_seen("tunnel", "nope", 1, "", "").error(), Errc::kNotFound);
  }
  EXPECT_TRUE(fs::exists(db + "-wal") || fs::exists(db));
  auto s = open_sqlite_store(db);  // reopening runs no migration twice
  EXPECT_EQ(s->schema_version(), 3);
  auto r = s->get_resource("tunnel", "sales");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->last_seen_ms, 1234);
  EXPECT_EQ(r->last_version, "mcp-tunnel/x");
  EXPECT_EQ(s->list_resources("tunnel").size(), 1u);
  EXPECT_EQ(s->get_resource("tunnel", "other").error(), Errc::kNotFound);
}

TEST(SqliteStore, TokensAreStoredHashedAndRevocable) {
  TempDir dir;
  auto s = open_sqlite_store(dir.path + "/t.db");
  ASSERT_TRUE(s->create_resource("tunnel", "sales"));
  auto minted = mint_token();
  TokenRecord rec{.id = minted.id, .kind = "tunnel", .name = "sales",
                  .hash = hash_token(minted.token), .created_at_ms = now_unix_ms()};
  ASSERT_TRUE(s->add_token(rec));
  EXPECT_EQ(s->add_token(rec).error(), Errc::kAlreadyExists);
  auto back = s->find_token(minted.id);
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->revoked);
  EXPECT_TRUE(verify_token(minted.token, back->hash));
  EXPECT_EQ(*s->revoke_tokens("tunnel", "sales"), 1);
  EXPECT_EQ(*s->revoke_tokens("tunnel", "sales"), 0);
  EXPECT_TRUE(s->find_token(minted.id)->revoked);
  EXPECT_EQ(s->find_token("000000000000").error(), Errc::kNotFound);
}

TEST(SqliteStore, NewerSchemaIsRefused) {
  TempDir dir;
  const std::string db = dir.path + "/n.db";
  { auto s = open_sqlite_store(db); }
  {
    // Simulate a database written by a newer airlockd.
    std::string cmd = "sqlite3 " + db + " 'PRAGMA user_version = 99'";
    if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "sqlite3 shell not installed";
  }
  try {
    open_sqlite_store(db);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("newer than this airlockd"), std::string::npos);
  }
}

TEST(SqliteStore, AgentsAndBindingsPersist) {
  TempDir dir;
  const std::string db = dir.path + "/b.db";
  {
    auto s = open_sqlite_store(db);
    ASSERT_TRUE(s->create_agent({.name = "agent-a", .tools = {"crm_*", "echo"}}));
    EXPECT_EQ(s->create_agent({.name = "agent-a", .tools = {"*"}}).error(), Errc::kAlreadyExists);
    ASSERT_TRUE(s->replace_bindings({{"b1", R"({"name":"b1"})"}, {"b2", R"({"name":"b2"})"}}));
    ASSERT_TRUE(s->replace_bindings({{"b3", R"({"name":"b3"})"}}));  // replaces, not merges
    ASSERT_TRUE(s->create_agent({.name = "agent-b", .tools = {"*"}}));
    ASSERT_TRUE(s->set_agent_tools("agent-b", {"echo"}));
    EXPECT_EQ(s->set_agent_tools("nobody", {"echo"}).error(), Errc::kNotFound);
  }
  auto s = open_sqlite_store(db);
  auto a = s->get_agent("agent-a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->tools, (std::vector<std::string>{"crm_*", "echo"}));
  EXPECT_EQ(s->get_agent("nobody").error(), Errc::kNotFound);
  auto b = s->list_bindings();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].first, "b3");
  EXPECT_EQ(s->get_agent("agent-b")->tools, (std::vector<std::string>{"echo"}));
}

TEST(SqliteStore, DeletesTakeTheirTokensWithThem) {
  TempDir dir;
  auto s = open_sqlite_store(dir.path + "/d.db");
  ASSERT_TRUE(s->create_resource("sandbox", "build"));
  const MintedToken t = mint_token();
  ASSERT_TRUE(
      s->add_token({.id = t.id, .kind = "sandbox", .name = "build", .hash = hash_token(t.token)}));
  ASSERT_TRUE(s->delete_resource("sandbox", "build"));
  EXPECT_EQ(s->get_resource("sandbox", "build").error(), Errc::kNotFound);
  EXPECT_EQ(s->find_token(t.id).error(), Errc::kNotFound);
  EXPECT_EQ(s->delete_resource("sandbox", "build").error(), Errc::kNotFound);

  ASSERT_TRUE(s->create_agent({.name = "bot", .tools = {"*"}}));
  const MintedToken k = mint_token();
  ASSERT_TRUE(
      s->add_token({.id = k.id, .kind = "agent", .name = "bot", .hash = hash_token(k.token)}));
  ASSERT_TRUE(s->delete_agent("bot"));
  EXPECT_EQ(s->get_agent("bot").error(), Errc::kNotFound);
  EXPECT_EQ(s->find_token(k.id).error(), Errc::kNotFound);
  EXPECT_EQ(s->delete_agent("bot").error(), Errc::kNotFound);
}

}  // namespace
}  // namespace airlock::controlplane
