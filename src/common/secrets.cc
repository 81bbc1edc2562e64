#include "common/secrets.h"

#include <spdlog/spdlog.h>

#include "common/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "common/config_util.h"

extern char** environ;

namespace airlock::secrets {
namespace {

void wipe(std::string& s) {
  if (!s.empty()) explicit_bzero(s.data(), s.size());
  s.clear();
}

std::string errno_text(int e) { return std::strerror(e); }

void check_size(const std::string& name, const std::string& from, size_t size) {
  if (size < redact::kMinSecretSize) {
    throw SecretError("secret '" + name + "' (" + from + ") is " + std::to_string(size) +
                      " bytes; secrets must be at least " +
                      std::to_string(redact::kMinSecretSize) +
                      " bytes, since shorter values would redact ordinary text");
  }
  if (size > kMaxSecretSize) {
    throw SecretError("secret '" + name + "' (" + from + ") is " + std::to_string(size) +
                      " bytes; the limit is " + std::to_string(kMaxSecretSize));
  }
}

// Reads a whole regular file (following symlinks, as mounted Kubernetes Secrets need).
std::shared_ptr<const SecretValue> read_secret_file(const std::string& name,
                                                    const std::string& path,
                                                    const std::string& from) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw SecretError("secret '" + name + "' (" + from + "): cannot open " + path + ": " +
                      errno_text(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw SecretError("secret '" + name + "' (" + from + "): " + path + " is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxSecretSize + 2) {
    ::close(fd);
    check_size(name, from, static_cast<size_t>(st.st_size));
  }
  std::string bytes(kMaxSecretSize + 2, '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      wipe(bytes);
      throw SecretError("secret '" + name + "' (" + from + "): cannot read " + path + ": " +
                        errno_text(e));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got > 0 && bytes[got - 1] == '\n') --got;  // one trailing newline, as editors leave it
  try {
    check_size(name, from, got);
  } catch (...) {
    wipe(bytes);
    throw;
  }
  auto value = std::make_shared<const SecretValue>(std::string_view(bytes.data(), got));
  wipe(bytes);
  return value;
}

// Reads VAR once, then removes it from the environment and wipes its bytes there, so that no
// child process inherits it and /proc/self/environ no longer shows it.
std::shared_ptr<const SecretValue> take_env(const std::string& name, const std::string& var,
                                            const std::string& from) {
  const std::string prefix = var + "=";
  for (char** e = environ; e && *e; ++e) {
    if (std::strncmp(*e, prefix.c_str(), prefix.size()) != 0) continue;
    char* value = *e + prefix.size();
    const size_t size = std::strlen(value);
    check_size(name, from, size);
    auto secret = std::make_shared<const SecretValue>(std::string_view(value, size));
    explicit_bzero(value, size);
    ::unsetenv(var.c_str());
    return secret;
  }
  throw SecretError("secret '" + name + "' (" + from + "): environment variable " + var +
                    " is not set");
}

std::string parent_directory(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

bool is_valid_secret_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
  });
}

std::vector<SourceSpec> parse_sources(const YAML::Node& node, const std::string& path) {
  if (!node.IsSequence()) {
    throw ConfigError(path + " must be a list of {name, from: env:VAR | file:PATH} or "
                      "{from: dir:PATH}");
  }
  std::vector<SourceSpec> out;
  std::set<std::string> names;
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string p = path + "[" + std::to_string(i) + "]";
    expect_keys(node[i], p, {"name", "from"});
    if (!node[i]["from"]) throw ConfigError(p + ".from is required (env:VAR, file:PATH or dir:PATH)");
    SourceSpec s;
    s.from = read_string(node[i]["from"], p + ".from");
    if (node[i]["name"]) s.name = read_string(node[i]["name"], p + ".name");
    const bool is_dir = s.from.rfind("dir:", 0) == 0;
    const bool is_file = s.from.rfind("file:", 0) == 0;
    const bool is_env = s.from.rfind("env:", 0) == 0;
    if (!is_dir && !is_file && !is_env) {
      throw ConfigError(p + ".from '" + s.from + "' must start with env:, file: or dir:");
    }
    const std::string rest = s.from.substr(s.from.find(':') + 1);
    if (rest.empty()) throw ConfigError(p + ".from '" + s.from + "' names nothing after the colon");
    if ((is_dir || is_file) && rest.front() != '/') {
      throw ConfigError(p + ".from '" + s.from + "' must be an absolute path");
    }
    if (is_dir) {
      if (!s.name.empty()) {
        throw ConfigError(p + ".name does not apply to dir: sources: each file is a secret "
                          "named after the file");
      }
    } else {
      if (s.name.empty()) throw ConfigError(p + ".name is required for " + s.from.substr(0, 5) + " sources");
      if (!is_valid_secret_name(s.name)) {
        throw ConfigError(p + ".name '" + s.name + "' must be 1-128 characters of [A-Za-z0-9_.-]");
      }
      if (!names.insert(s.name).second) {
        throw ConfigError(p + ".name '" + s.name + "' is defined twice");
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
SecretValue::SecretValue(std::string_view bytes) : size_(bytes.size()) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  mapped_ = std::max<size_t>(page, (bytes.size() + page - 1) / page * page);
  void* p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  data_ = static_cast<char*>(p);
  ::madvise(data_, mapped_, MADV_DONTDUMP);
  ::madvise(data_, mapped_, MADV_WIPEONFORK);  // a forked child sees zeros, never the value
  locked_ = ::mlock(data_, mapped_) == 0;
  std::memcpy(data_, bytes.data(), bytes.size());
}

SecretValue::~SecretValue() {
  explicit_bzero(data_, mapped_);
  if (locked_) ::munlock(data_, mapped_);
  ::munmap(data_, mapped_);
}

const SecretValue* SecretSet::find(std::string_view name) const {
  auto it = values.find(name);
  return it == values.end() ? nullptr : it->second.get();
}

std::vector<std::string> SecretSet::names() const {
  std::vector<std::string> out;
  for (const auto& [name, v] : values) out.push_back(name);
  return out;
}

// ---------------------------------------------------------------------------------------------
SecretStore::SecretStore(std::vector<SourceSpec> sources) : sources_(std::move(sources)) {}
SecretStore::~SecretStore() = default;

std::shared_ptr<SecretSet> SecretStore::read_all() {
  auto set = std::make_shared<SecretSet>();
  auto add = [&](const std::string& name, const std::string& from,
                 std::shared_ptr<const SecretValue> value) {
    if (set->values.count(name)) {
      throw SecretError("secret '" + name + "' is defined twice: by " + set->origin[name] +
                        " and by " + from);
    }
    set->values.emplace(name, std::move(value));
    set->origin.emplace(name, from);
  };
  for (const auto& src : sources_) {
    const std::string rest = src.from.substr(src.from.find(':') + 1);
    if (src.from.rfind("env:", 0) == 0) {
      auto it = env_values_.find(src.name);
      if (it == env_values_.end()) {
        it = env_values_.emplace(src.name, take_env(src.name, rest, src.from)).first;
      }
      add(src.name, src.from, it->second);
    } else if (src.from.rfind("file:", 0) == 0) {
      add(src.name, src.from, read_secret_file(src.name, rest, src.from));
    } else {
      DIR* d = ::opendir(rest.c_str());
      if (!d) {
        throw SecretError("secret source " + src.from + ": cannot open the directory: " +
                          errno_text(errno));
      }
      std::vector<std::string> files;
      while (auto* e = ::readdir(d)) {
        const std::string f = e->d_name;
        if (f.empty() || f[0] == '.') continue;  // ., .., and Kubernetes' ..data machinery
        files.push_back(f);
      }
      ::closedir(d);
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        const std::string path = rest + "/" + f;
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // subdirectories
        if (!is_valid_secret_name(f)) {
          throw SecretError("secret source " + src.from + ": file '" + f +
                            "' is not a valid secret name (1-128 characters of [A-Za-z0-9_.-])");
        }
        add(f, "dir:" + path, read_secret_file(f, path, "dir:" + path));
      }
    }
  }
  return set;
}

void SecretStore::load() {
  std::string error;
  if (!reload(error)) throw SecretError(error);
}

bool SecretStore::reload(std::string& error, std::vector<std::string>* changed) {
  std::shared_ptr<SecretSet> next;
  try {
    next = read_all();
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
  std::lock_guard lock(mu_);
  std::vector<std::string> diff;
  auto previous = previous_;
  if (current_) {
    for (const auto& [name, old] : current_->values) {
      const SecretValue* now = next->find(name);
      if (now && now->view() == old->view()) continue;
      diff.push_back(name);
      auto& kept = previous[name];
      kept.push_back(old);
      if (kept.size() > kPreviousValuesKept) kept.erase(kept.begin());
    }
    for (const auto& [name, v] : next->values) {
      if (!current_->find(name)) diff.push_back(name);
    }
    std::sort(diff.begin(), diff.end());
    diff.erase(std::unique(diff.begin(), diff.end()), diff.end());
    if (diff.empty()) {
      if (changed) changed->clear();
      return true;  // same values: keep the built automaton
    }
  }
  std::vector<redact::Secret> plain;
  auto wipe_plain = [&] {
    for (auto& s : plain) wipe(s.value);
  };
  for (const auto& [name, v] : next->values) plain.push_back({name, std::string(v->view())});
  for (const auto& [name, values] : previous) {
    for (const auto& v : values) {
      // A value that is current again (a rollback) needs no second entry.
      if (const SecretValue* now = next->find(name); now && now->view() == v->view()) continue;
      plain.push_back({name, std::string(v->view())});
    }
  }
  try {
    if (!plain.empty()) next->patterns = redact::Patterns::build(plain);
  } catch (const std::exception& e) {
    wipe_plain();
    error = e.what();
    return false;
  }
  wipe_plain();
  next->generation = ++generation_;
  previous_ = std::move(previous);
  current_ = std::move(next);
  if (changed) *changed = std::move(diff);
  return true;
}

std::shared_ptr<const SecretSet> SecretStore::current() const {
  std::lock_guard lock(mu_);
  return current_;
}

std::vector<std::string> SecretStore::watched_directories() const {
  std::set<std::string> dirs;
  for (const auto& src : sources_) {
    const std::string rest = src.from.substr(src.from.find(':') + 1);
    if (src.from.rfind("file:", 0) == 0) dirs.insert(parent_directory(rest));
    if (src.from.rfind("dir:", 0) == 0) dirs.insert(rest);
  }
  return {dirs.begin(), dirs.end()};
}

// ---------------------------------------------------------------------------------------------
TemplateRefs parse_template(std::string_view text, const std::string& path) {
  TemplateRefs refs;
  for (size_t at = text.find("${"); at != std::string_view::npos; at = text.find("${", at)) {
    const size_t close = text.find('}', at);
    if (close == std::string_view::npos) {
      throw ConfigError(path + " has an unterminated '${' (use ${secret:NAME} or ${agent_secret})");
    }
    const std::string_view ref = text.substr(at + 2, close - at - 2);
    if (ref == "agent_secret") {
      refs.agent_secret = true;
    } else if (ref.rfind("secret:", 0) == 0 && is_valid_secret_name(ref.substr(7))) {
      const std::string name(ref.substr(7));
      if (std::find(refs.secrets.begin(), refs.secrets.end(), name) == refs.secrets.end()) {
        refs.secrets.push_back(name);
      }
    } else {
      throw ConfigError(path + ": '${" + std::string(ref) +
                        "}' is not a reference Airlock knows; use ${secret:NAME} or "
                        "${agent_secret}");
    }
    at = close + 1;
  }
  return refs;
}

bool expand(std::string_view text, const SecretSet& set, const SecretValue* agent_secret,
            std::string& out, std::string& error) {
  out.clear();
  size_t from = 0;
  for (size_t at = text.find("${"); at != std::string_view::npos; at = text.find("${", from)) {
    const size_t close = text.find('}', at);
    if (close == std::string_view::npos) break;  // parse_template refused it at load
    out.append(text.substr(from, at - from));
    const std::string_view ref = text.substr(at + 2, close - at - 2);
    const SecretValue* v = nullptr;
    if (ref == "agent_secret") {
      v = agent_secret;
      if (!v) {
        wipe(out);
        error = "no per-agent credential was chosen for this session";
        return false;
      }
    } else {
      v = set.find(ref.substr(7));
      if (!v) {
        wipe(out);
        error = "secret '" + std::string(ref.substr(7)) + "' is not loaded";
        return false;
      }
    }
    out.append(v->view());
    from = close + 1;
  }
  out.append(text.substr(from));
  return true;
}

std::shared_ptr<SecretStore> open_secret_store(std::vector<SourceSpec> sources, bool report) {
  auto store = std::make_shared<SecretStore>(std::move(sources));
  store->load();
  set_log_redaction([store] {
    auto set = store->current();
    return set ? set->patterns : nullptr;
  });
  if (auto set = store->current(); report && set && !set->values.empty()) {
    size_t unlocked = 0;
    for (const auto& [n, v] : set->values) unlocked += !v->locked();
    spdlog::info("{} secret(s) loaded{}", set->values.size(),
                 unlocked ? " (" + std::to_string(unlocked) +
                                " not locked in memory: mlock needs CAP_IPC_LOCK or a larger "
                                "RLIMIT_MEMLOCK)"
                          : "");
  }
  return store;
}

}  // namespace airlock::secrets
