// SQLite implementation of Store: one connection, WAL journal, versioned migrations applied in
// order inside transactions and recorded in PRAGMA user_version.
#include <sqlite3.h>

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <stdexcept>

#include "controlplane/sqlite_statement.h"
#include "controlplane/store.h"

namespace airlock::controlplane {

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

// Each entry moves the schema one version up. Never edit a shipped entry; append a new one.
constexpr const char* kMigrations[] = {
    // 1: resources and their tokens.
    R"sql(
    CREATE TABLE resources (
      kind TEXT NOT NULL CHECK (kind IN ('tunnel', 'sandbox')),
      name TEXT NOT NULL,
      created_at_ms INTEGER NOT NULL,
      last_seen_ms INTEGER NOT NULL DEFAULT 0,
      last_version TEXT NOT NULL DEFAULT '',
      last_remote TEXT NOT NULL DEFAULT '',
      PRIMARY KEY (kind, name)
    );
    CREATE TABLE tokens (
      id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      name TEXT NOT NULL,
      salt_hex TEXT NOT NULL,
      hash_hex TEXT NOT NULL,
      created_at_ms INTEGER NOT NULL,
      revoked_at_ms INTEGER
    );
    CREATE INDEX tokens_by_resource ON tokens (kind, name);
    )sql",
    // 2: agents (owners of agent keys), tool bindings, and recorded events.
    R"sql(
    CREATE TABLE agents (
      name TEXT PRIMARY KEY,
      tools_json TEXT NOT NULL,
      created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE bindings (
      name TEXT PRIMARY KEY,
      spec_json TEXT NOT NULL,
      updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE events (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      at_ms INTEGER NOT NULL,
      type TEXT NOT NULL,
      agent TEXT NOT NULL DEFAULT '',
      tool TEXT NOT NULL DEFAULT '',
      detail_json TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_by_type ON events (type, id);
    )sql",
    // 3: a description an operator may give a resource. (The events table of version 2 is no
    // longer written: the audit log, audit.db, took its place.)
    R"sql(
    ALTER TABLE resources ADD COLUMN description TEXT NOT NULL DEFAULT '';
    )sql",
};

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(const std::string& path) : path_(path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error("cannot open database " + path + ": " + msg);
    }
    try {
      exec("PRAGMA journal_mode=WAL");
      exec("PRAGMA synchronous=NORMAL");
      exec("PRAGMA foreign_keys=ON");
      sqlite3_busy_timeout(db_, 5000);
      migrate();
    } catch (...) {
      sqlite3_close(db_);  // the destructor does not run for a constructor that throws
      throw;
    }
  }
  ~SqliteStore() override { sqlite3_close(db_); }

  Result<void> create_resource(const std::string& kind, const std::string& name) override {
    Statement s(db_, "INSERT INTO resources (kind, name, created_at_ms) VALUES (?, ?, ?)");
    s.bind(1, kind).bind(2, name).bind(3, now_unix_ms());
    const int rc = s.step();
    if (rc == SQLITE_CONSTRAINT) return make_error_code(Errc::kAlreadyExists);
    if (rc != SQLITE_DONE) return make_error_code(Errc::kInvalidArgument);
    return {};
  }

  Result<ResourceRecord> get_resource(const std::string& kind, const std::string& name) override {
    Statement s(
        db_,
        "SELECT kind, name, created_at_ms, last_seen_ms, last_version, last_remote, description "
        "FROM resources WHERE kind = ? AND name = ?");
    s.bind(1, kind).bind(2, name);
    if (s.step() != SQLITE_ROW) return make_error_code(Errc::kNotFound);
    return row(s);
  }

  std::vector<ResourceRecord> list_resources(const std::string& kind) override {
    Statement s(
        db_,
        "SELECT kind, name, created_at_ms, last_seen_ms, last_version, last_remote, description "
        "FROM resources WHERE kind = ? ORDER BY name");
    s.bind(1, kind);
    std::vector<ResourceRecord> out;
    while (s.step() == SQLITE_ROW) out.push_back(row(s));
    return out;
  }

  Result<void> record_seen(const std::string& kind, const std::string& name, int64_t when_ms,
                           const std::string& version, const std::string& remote) override {
    Statement s(db_,
                "UPDATE resources SET last_seen_ms = ?, last_version = ?, last_remote = ? "
                "WHERE kind = ? AND name = ?");
    s.bind(1, when_ms).bind(2, version).bind(3, remote).bind(4, kind).bind(5, name);
    if (s.step() != SQLITE_DONE) return make_error_code(Errc::kInvalidArgument);
    if (s.changes() == 0) return make_error_code(Errc::kNotFound);
    return {};
  }

  Result<void> add_token(const TokenRecord& t) override {
    Statement s(db_,
                "INSERT INTO tokens (id, kind, name, salt_hex, hash_hex, created_at_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)");
    s.bind(1, t.id).bind(2, t.kind).bind(3, t.name).bind(4, t.hash.salt_hex);
    s.bind(5, t.hash.hash_hex).bind(6, t.created_at_ms);
    const int rc = s.step();
    if (rc == SQLITE_CONSTRAINT) return make_error_code(Errc::kAlreadyExists);
    if (rc != SQLITE_DONE) return make_error_code(Errc::kInvalidArgument);
    return {};
  }

  Result<TokenRecord> find_token(const std::string& id) override {
    Statement s(db_,
                "SELECT id, kind, name, salt_hex, hash_hex, created_at_ms, revoked_at_ms "
                "FROM tokens WHERE id = ?");
    s.bind(1, id);
    if (s.step() != SQLITE_ROW) return make_error_code(Errc::kNotFound);
    TokenRecord t;
    t.id = s.text(0);
    t.kind = s.text(1);
    t.name = s.text(2);
    t.hash.salt_hex = s.text(3);
    t.hash.hash_hex = s.text(4);
    t.created_at_ms = s.i64(5);
    t.revoked = !s.is_null(6);
    return t;
  }

  Result<int> revoke_tokens(const std::string& kind, const std::string& name) override {
    Statement s(db_,
                "UPDATE tokens SET revoked_at_ms = ? "
                "WHERE kind = ? AND name = ? AND revoked_at_ms IS NULL");
    s.bind(1, now_unix_ms()).bind(2, kind).bind(3, name);
    if (s.step() != SQLITE_DONE) return make_error_code(Errc::kInvalidArgument);
    return s.changes();
  }

  Result<void> set_description(const std::string& kind, const std::string& name,
                               const std::string& description) override {
    Statement s(db_, "UPDATE resources SET description = ? WHERE kind = ? AND name = ?");
    s.bind(1, description).bind(2, kind).bind(3, name);
    if (s.step() != SQLITE_DONE) return make_error_code(Errc::kInvalidArgument);
    if (s.changes() == 0) return make_error_code(Errc::kNotFound);
    return {};
  }

  Result<void> delete_resource(const std::string& kind, const std::string& name) override {
    return in_transaction([&] {
      Statement t(db_, "DELETE FROM tokens WHERE kind = ? AND name = ?");
      t.bind(1, kind).bind(2, name);
      if (t.step() != SQLITE_DONE) return false;
      Statement r(db_, "DELETE FROM resources WHERE kind = ? AND name = ?");
      r.bind(1, kind).bind(2, name);
      return r.step() == SQLITE_DONE && r.changes() == 1;
    });
  }

  Result<void> set_agent_tools(const std::string& name,
                               const std::vector<std::string>& tools) override {
    Statement s(db_, "UPDATE agents SET tools_json = ? WHERE name = ?");
    s.bind(1, join_json(tools)).bind(2, name);
    if (s.step() != SQLITE_DONE) return make_error_code(Errc::kInvalidArgument);
    if (s.changes() == 0) return make_error_code(Errc::kNotFound);
    return {};
  }

  Result<void> delete_agent(const std::string& name) override {
    return in_transaction([&] {
      Statement t(db_, "DELETE FROM tokens WHERE kind = 'agent' AND name = ?");
      t.bind(1, name);
      if (t.step() != SQLITE_DONE) return false;
      Statement a(db_, "DELETE FROM agents WHERE name = ?");
      a.bind(1, name);
      return a.step() == SQLITE_DONE && a.changes() == 1;
    });
  }

  Result<void> create_agent(const AgentRecord& a) override {
    Statement s(db_, "INSERT INTO agents (name, tools_json, created_at_ms) VALUES (?, ?, ?)");
    s.bind(1, a.name).bind(2, join_json(a.tools)).bind(3, a.created_at_ms ? a.created_at_ms : now_unix_ms());
    const int rc = s.step();
    if (rc == SQLITE_CONSTRAINT) return make_error_code(Errc::kAlreadyExists);
    if (rc != SQLITE_DONE) return make_error_code(Errc::kInvalidArgument);
    return {};
  }

  Result<AgentRecord> get_agent(const std::string& name) override {
    Statement s(db_, "SELECT name, tools_json, created_at_ms FROM agents WHERE name = ?");
    s.bind(1, name);
    if (s.step() != SQLITE_ROW) return make_error_code(Errc::kNotFound);
    return agent_row(s);
  }

  std::vector<AgentRecord> list_agents() override {
    Statement s(db_, "SELECT name, tools_json, created_at_ms FROM agents ORDER BY name");
    std::vector<AgentRecord> out;
    while (s.step() == SQLITE_ROW) out.push_back(agent_row(s));
    return out;
  }

  Result<void> replace_bindings(
      const std::vector<std::pair<std::string, std::string>>& bindings) override {
    exec("BEGIN IMMEDIATE");
    try {
      exec("DELETE FROM bindings");
      for (const auto& [name, spec] : bindings) {
        Statement s(db_, "INSERT INTO bindings (name, spec_json, updated_at_ms) VALUES (?, ?, ?)");
        s.bind(1, name).bind(2, spec).bind(3, now_unix_ms());
        if (s.step() != SQLITE_DONE) throw std::runtime_error("insert binding failed");
      }
      exec("COMMIT");
    } catch (...) {
      exec("ROLLBACK");
      return make_error_code(Errc::kInvalidArgument);
    }
    return {};
  }

  std::vector<std::pair<std::string, std::string>> list_bindings() override {
    Statement s(db_, "SELECT name, spec_json FROM bindings ORDER BY name");
    std::vector<std::pair<std::string, std::string>> out;
    while (s.step() == SQLITE_ROW) out.emplace_back(s.text(0), s.text(1));
    return out;
  }

  int schema_version() override {
    Statement s(db_, "PRAGMA user_version");
    return s.step() == SQLITE_ROW ? static_cast<int>(s.i64(0)) : -1;
  }

 private:
  // Tool globs are stored as a JSON array of strings.
  static std::string join_json(const std::vector<std::string>& v) {
    boost::json::array a;
    for (const auto& x : v) a.push_back(boost::json::string(x));
    return boost::json::serialize(a);
  }

  static AgentRecord agent_row(Statement& s) {
    AgentRecord a;
    a.name = s.text(0);
    boost::system::error_code ec;
    auto v = boost::json::parse(s.text(1), ec);
    if (!ec && v.is_array()) {
      for (const auto& x : v.as_array()) {
        if (x.is_string()) a.tools.emplace_back(x.as_string());
      }
    }
    a.created_at_ms = s.i64(2);
    return a;
  }

  static ResourceRecord row(Statement& s) {
    ResourceRecord r;
    r.kind = s.text(0);
    r.name = s.text(1);
    r.created_at_ms = s.i64(2);
    r.last_seen_ms = s.i64(3);
    r.last_version = s.text(4);
    r.last_remote = s.text(5);
    r.description = s.text(6);
    return r;
  }

  // Runs `body` in a transaction: committed when it returns true; otherwise rolled back and
  // kNotFound (what the deletes above fail on).
  template <class F>
  Result<void> in_transaction(F body) {
    exec("BEGIN IMMEDIATE");
    bool ok = false;
    try {
      ok = body();
    } catch (...) {
      exec("ROLLBACK");
      throw;
    }
    exec(ok ? "COMMIT" : "ROLLBACK");
    if (!ok) return make_error_code(Errc::kNotFound);
    return {};
  }

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      throw std::runtime_error("database " + path_ + ": " + msg);
    }
  }

  void migrate() {
    const int have = schema_version();
    const int want = static_cast<int>(std::size(kMigrations));
    if (have > want) {
      throw std::runtime_error("database " + path_ + " has schema version " +
                               std::to_string(have) + ", newer than this airlockd (" +
                               std::to_string(want) + "); upgrade airlockd");
    }
    for (int v = have; v < want; ++v) {
      exec("BEGIN IMMEDIATE");
      try {
        exec(kMigrations[v]);
        exec("PRAGMA user_version = " + std::to_string(v + 1));
        exec("COMMIT");
      } catch (...) {
        exec("ROLLBACK");
        throw;
      }
    }
  }

  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path) {
  return std::make_unique<SqliteStore>(path);
}

}  // namespace airlock::controlplane
