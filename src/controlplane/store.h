// Store: airlockd's durable state — resources (tunnels, sandboxes), their token hashes and
// what was last seen of them, agents and tool bindings — behind one interface (the audit log
// is apart, in audit_log.h), so that the SQLite implementation used on
// one machine and a PostgreSQL one for replicas are interchangeable. Implementations are used
// from airlockd's single io thread; they are not required to be thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "airlock/error.h"
#include "common/token.h"

namespace airlock::controlplane {

struct ResourceRecord {
  std::string kind;  // "tunnel" | "sandbox"
  std::string name;
  int64_t created_at_ms = 0;
  int64_t last_seen_ms = 0;  // 0: never connected
  std::string last_version;
  std::string last_remote;
  std::string description;  // the operator's words, shown by the CLI and the console
};

struct TokenRecord {
  std::string id;
  std::string kind;  // "tunnel" | "sandbox" | "admin"
  std::string name;
  StoredTokenHash hash;
  int64_t created_at_ms = 0;
  bool revoked = false;
};

// An agent key's owner: the name agents are known by, and the tools its keys may use.
struct AgentRecord {
  std::string name;
  std::vector<std::string> tools;  // globs over exposed tool (and prompt) names
  int64_t created_at_ms = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Result<void> create_resource(const std::string& kind, const std::string& name) = 0;
  virtual Result<ResourceRecord> get_resource(const std::string& kind,
                                              const std::string& name) = 0;
  virtual std::vector<ResourceRecord> list_resources(const std::string& kind) = 0;
  virtual Result<void> record_seen(const std::string& kind, const std::string& name,
                                   int64_t when_ms, const std::string& version,
                                   const std::string& remote) = 0;

  virtual Result<void> add_token(const TokenRecord& token) = 0;
  virtual Result<TokenRecord> find_token(const std::string& id) = 0;
  // Revokes every token of the resource; returns how many were live.
  virtual Result<int> revoke_tokens(const std::string& kind, const std::string& name) = 0;
  virtual Result<void> set_description(const std::string& kind, const std::string& name,
                                       const std::string& description) = 0;
  // Removes the resource and every token of it (live links are the caller's to close).
  virtual Result<void> delete_resource(const std::string& kind, const std::string& name) = 0;
  virtual Result<void> create_agent(const AgentRecord& agent) = 0;
  virtual Result<void> set_agent_tools(const std::string& name,
                                       const std::vector<std::string>& tools) = 0;
  // Removes the agent and every key of it.
  virtual Result<void> delete_agent(const std::string& name) = 0;
  virtual Result<AgentRecord> get_agent(const std::string& name) = 0;
  virtual std::vector<AgentRecord> list_agents() = 0;

  // Tool bindings as (name, JSON spec). replace_bindings swaps the whole set atomically.
  virtual Result<void> replace_bindings(
      const std::vector<std::pair<std::string, std::string>>& bindings) = 0;
  virtual std::vector<std::pair<std::string, std::string>> list_bindings() = 0;

  virtual int schema_version() = 0;
};

// Opens (creating if needed) the SQLite database at `path` in WAL mode and brings its schema
// to the newest version. Throws std::runtime_error naming the file and SQLite's message.
std::unique_ptr<Store> open_sqlite_store(const std::string& path);

int64_t now_unix_ms();

}  // namespace airlock::controlplane
