// Secrets: named credential values that only a connector (mcp-tunnel, sandbox-agent) holds.
// Loaded from `env:VAR`, `file:/path` (one trailing newline trimmed) and `dir:/path` (every
// file a secret named after it, e.g. a mounted Kubernetes Secret), kept in memory of their
// own (locked against swapping where the OS allows, left out of core dumps, wiped when
// released), and reloaded as a whole: a reload that fails in any part changes nothing.
//
// SecretStore is plain code over files and the environment (no sockets, no event loop);
// SecretWatcher (secrets_watcher.h) reloads it on SIGHUP and when the files change.
// Thread-safe: current() may be called from any thread while another reloads.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/redactor.h"

namespace airlock::secrets {

class SecretError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Larger files are refused: a secret is a token or a key, not a document.
inline constexpr size_t kMaxSecretSize = 64 * 1024;
// How many earlier values of each secret stay in the redactor after a rotation, so that an
// old value still echoed by an upstream is caught too.
inline constexpr size_t kPreviousValuesKept = 2;

struct SourceSpec {
  std::string name;  // the secret's name; empty for dir: sources (each file names its own)
  std::string from;  // "env:VAR", "file:/path" or "dir:/path"
};

// Parses a `secrets:` list: entries {name, from} or {from: "dir:…"}. Throws ConfigError
// naming the key path.
std::vector<SourceSpec> parse_sources(const YAML::Node& node, const std::string& path);

// Secret names share the resource-name alphabet: 1-128 characters of [A-Za-z0-9_.-].
bool is_valid_secret_name(std::string_view name);

// One secret's bytes in pages of their own. Not copyable; share it by shared_ptr.
class SecretValue {
 public:
  explicit SecretValue(std::string_view bytes);
  ~SecretValue();
  SecretValue(const SecretValue&) = delete;
  SecretValue& operator=(const SecretValue&) = delete;

  std::string_view view() const { return {data_, size_}; }
  size_t size() const { return size_; }
  // Whether mlock() succeeded (it needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK).
  bool locked() const { return locked_; }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;
  bool locked_ = false;
};

// One consistent generation of every loaded secret.
struct SecretSet {
  uint64_t generation = 0;
  std::map<std::string, std::shared_ptr<const SecretValue>, std::less<>> values;
  std::map<std::string, std::string, std::less<>> origin;  // name -> "file:/path" etc.
  // Every current value and up to kPreviousValuesKept earlier ones of each secret, in every
  // encoding the redactor knows. Null when no secret is loaded.
  std::shared_ptr<const redact::Patterns> patterns;

  const SecretValue* find(std::string_view name) const;
  std::vector<std::string> names() const;
};

class SecretStore {
 public:
  explicit SecretStore(std::vector<SourceSpec> sources);
  ~SecretStore();

  // First load. Throws SecretError naming the source and the problem. `env:` variables are
  // read here once and then removed from this process's environment (and their bytes in it
  // wiped), so that child processes never inherit them.
  void load();
  // Loads every source again. On any error nothing changes and `error` says why; otherwise
  // the new set becomes current and `changed` (if given) lists the secrets whose value,
  // presence or absence differs.
  bool reload(std::string& error, std::vector<std::string>* changed = nullptr);

  std::shared_ptr<const SecretSet> current() const;
  const std::vector<SourceSpec>& sources() const { return sources_; }
  // Directories whose changes call for a reload (those of file: sources, and dir: sources).
  std::vector<std::string> watched_directories() const;

 private:
  std::shared_ptr<SecretSet> read_all();

  std::vector<SourceSpec> sources_;
  mutable std::mutex mu_;
  std::shared_ptr<const SecretSet> current_;
  // name -> earlier values, oldest first (kept for redaction only).
  std::map<std::string, std::vector<std::shared_ptr<const SecretValue>>> previous_;
  // env: sources, read once at load().
  std::map<std::string, std::shared_ptr<const SecretValue>> env_values_;
  uint64_t generation_ = 0;
};

// A program's secrets at start-up: loaded (throws SecretError), and every log line from then on
// redacted of them (log.h). With `report`, logs how many were loaded and how many could not be
// locked in memory (the daemons do; a one-shot `sandbox-agent run` stays quiet). Used by every
// program that holds secrets, before anything else runs.
std::shared_ptr<SecretStore> open_secret_store(std::vector<SourceSpec> sources, bool report);


// Expands "${secret:NAME}" references in `text` with values from `set`, and "${agent_secret}"
// with `agent_secret` (the per-agent credential chosen for a session; may be null). Returns
// false with `error` naming the missing secret.
bool expand(std::string_view text, const SecretSet& set, const SecretValue* agent_secret,
            std::string& out, std::string& error);

// The secret names a template refers to, and whether it uses ${agent_secret}. Throws
// ConfigError (with `path`) on a malformed or unknown ${…} reference.
struct TemplateRefs {
  std::vector<std::string> secrets;
  bool agent_secret = false;
};
TemplateRefs parse_template(std::string_view text, const std::string& path);

}  // namespace airlock::secrets
