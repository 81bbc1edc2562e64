#include "sandbox/toolbox.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <regex.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "sandbox/toolbox_protocol.h"

extern char** environ;

namespace airlock::sandbox {
namespace {

using Clock = std::chrono::steady_clock;
using toolbox::Op;
using toolbox::Reply;
using toolbox::Request;

// Output kept per bash or exec call, and matches kept per grep.
constexpr size_t kOutputCap = 100 * 1024;
constexpr size_t kReadCap = 256 * 1024;
constexpr size_t kGlobResults = 200;
constexpr size_t kWalkLimit = 200'000;  // entries a glob or grep visits at most
constexpr size_t kFetchCap = 100 * 1024;
constexpr auto kProgressEvery = std::chrono::seconds(2);
// A shell whose command was killed gets this long to print its end marker before it is
// killed too (a builtin loop runs in the shell itself).
constexpr auto kShellGrace = std::chrono::seconds(2);

std::string errno_text(int e) { return std::strerror(e); }

std::string resolve(const std::string& path) {
  if (path.empty()) return "/workspace";
  if (path[0] == '/') return path;
  return "/workspace/" + path;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string random_token() {
  std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string t;
  for (int i = 0; i < 24; ++i) t.push_back(hex[rd() % 16]);
  return t;
}

// --- processes -------------------------------------------------------------------------------

// Every process in the sandbox's PID namespace, from /proc.
struct ProcessInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  char state = 0;               // 'Z': a zombie, already dead
  unsigned long long start = 0;  // start time: with pid, names one process for good
};
using ProcessId = std::pair<pid_t, unsigned long long>;

std::vector<ProcessInfo> list_processes() {
  std::vector<ProcessInfo> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (!end || *end || pid <= 0) continue;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[1024];
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    // Fields after the command name's closing parenthesis: 3 state, 4 ppid, … 22 starttime.
    const char* p = std::strrchr(buf, ')');
    if (!p) continue;
    ProcessInfo info;
    info.pid = static_cast<pid_t>(pid);
    int ppid = 0;
    if (std::sscanf(p + 1, " %c %d", &info.state, &ppid) != 2) continue;
    info.ppid = ppid;
    int field = 2;
    for (const char* q = p + 1; *q; ++q) {
      if (*q == ' ' && ++field == 22) {
        info.start = std::strtoull(q + 1, nullptr, 10);
        break;
      }
    }
    out.push_back(info);
  }
  ::closedir(d);
  return out;
}

std::set<ProcessId> process_ids() {
  std::set<ProcessId> out;
  for (const auto& p : list_processes()) out.emplace(p.pid, p.start);
  return out;
}

// Kills every live process that is not in `keep` and is not the init, the toolbox or `spare`,
// until none is left (a process may fork while it is being killed). Returns how many.
size_t kill_new_processes(const std::set<ProcessId>& keep, pid_t spare) {
  size_t killed = 0;
  for (int pass = 0; pass < 50; ++pass) {
    size_t this_pass = 0;
    for (const auto& p : list_processes()) {
      if (p.pid == 1 || p.pid == ::getpid() || p.pid == spare || p.state == 'Z' ||
          keep.count({p.pid, p.start})) {
        continue;
      }
      if (::kill(p.pid, SIGKILL) == 0) ++this_pass;
    }
    killed += this_pass;
    if (this_pass == 0) break;
    ::usleep(1000);
  }
  return killed;
}

// Kills `root` and every live process descended from it, until none is left.
void kill_tree(pid_t root) {
  for (int pass = 0; pass < 50; ++pass) {
    const auto all = list_processes();
    std::set<pid_t> tree{root};
    for (bool grew = true; grew;) {
      grew = false;
      for (const auto& p : all) {
        if (tree.count(p.ppid) && tree.insert(p.pid).second) grew = true;
      }
    }
    size_t killed = 0;
    for (const auto& p : all) {
      if (!tree.count(p.pid) || p.state == 'Z' || p.pid == 1 || p.pid == ::getpid()) continue;
      if (::kill(p.pid, SIGKILL) == 0) ++killed;
    }
    if (killed == 0) return;
    ::usleep(1000);
  }
}

// A child's output pipe and pidfd.
struct Child {
  pid_t pid = -1;
  int pidfd = -1;
  int out = -1;  // read end: stdout and stderr together, or a worker's encoded reply
  bool exited = false;
  int status = 0;
  void close_all() {
    if (pidfd >= 0) ::close(pidfd), pidfd = -1;
    if (out >= 0) ::close(out), out = -1;
  }
};

// Starts `fn` in a child whose stdout and stderr go to a pipe. In the child, `fn` runs and the
// child exits with what it returns.
template <class Fn>
bool spawn(Child& c, Fn fn, std::string& error) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    error = "pipe2: " + errno_text(errno);
    return false;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    error = "fork: " + errno_text(errno);
    ::close(fds[0]), ::close(fds[1]);
    return false;
  }
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::syscall(SYS_close_range, 3u, ~0u, 0u);
    ::_exit(fn());
  }
  ::close(fds[1]);
  c.pid = pid;
  c.out = fds[0];
  c.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  ::fcntl(c.out, F_SETFL, O_NONBLOCK);
  return true;
}

// --- files -----------------------------------------------------------------------------------

Reply error_reply(uint64_t id, std::string text) {
  Reply r;
  r.id = id;
  r.is_error = true;
  r.text = std::move(text);
  return r;
}

Reply ok_reply(uint64_t id, std::string text) {
  Reply r;
  r.id = id;
  r.text = std::move(text);
  return r;
}

// --- read, as the reference environment workers word it (Style::kManagedAgents) -------------

constexpr size_t kMaReadLimit = 110'000;     // bytes of text one read returns
constexpr size_t kMaMediaLimit = 16u << 20;  // an image or PDF, before base64

// "image/png" etc. for the first bytes of an image or PDF; empty for anything else.
std::string media_type_of(std::string_view head) {
  auto starts = [&](std::string_view magic) { return head.substr(0, magic.size()) == magic; };
  if (starts("\x89PNG\r\n\x1a\n")) return "image/png";
  if (starts("\xff\xd8\xff")) return "image/jpeg";
  if (starts("GIF87a") || starts("GIF89a")) return "image/gif";
  if (head.size() >= 12 && starts("RIFF") && head.substr(8, 4) == "WEBP") return "image/webp";
  if (starts("%PDF-")) return "application/pdf";
  return "";
}

std::string base64_of(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = ::EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

bool read_file(const std::string& path, std::string& out, std::string& error);

// strerror's words as the reference workers put them: "no such file or directory".
std::string lower_first(std::string text) {
  if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z')
    text[0] = static_cast<char>(text[0] - 'A' + 'a');
  return text;
}

Reply do_read_managed(const Request& q) {
  const std::string path = resolve(q.path);
  const std::string& shown = q.path;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return error_reply(q.id, "read: " + shown + ": " + lower_first(errno_text(errno)));
  if (!S_ISREG(st.st_mode)) return error_reply(q.id, "read: " + shown + " is not a regular file");
  int64_t first = 1, last = 0;  // last <= 0: to the end
  if (q.view_range) {
    first = std::max<int64_t>(1, q.view_range->first);
    last = q.view_range->second;
  }
  std::string head(16, '\0');
  if (FILE* f = std::fopen(path.c_str(), "re")) {
    head.resize(std::fread(head.data(), 1, head.size(), f));
    std::fclose(f);
  }
  if (const std::string type = media_type_of(head); !type.empty() && !q.view_range) {
    if (static_cast<size_t>(st.st_size) > kMaMediaLimit) {
      return error_reply(q.id, "read: " + shown + " is " + std::to_string(st.st_size) +
                                   " bytes, exceeds the " + std::to_string(kMaMediaLimit) +
                                   "-byte limit for " + type);
    }
    std::string bytes, error;
    if (!read_file(path, bytes, error))
      return error_reply(q.id, "read: " + shown + ": " + lower_first(error));
    Reply r;
    r.id = q.id;
    r.media_type = type;
    r.data = base64_of(bytes);
    return r;
  }
  if (static_cast<size_t>(st.st_size) > kMaReadLimit && !q.view_range) {
    return error_reply(q.id, "read: " + shown + " is " + std::to_string(st.st_size) +
                                 " bytes, exceeds " + std::to_string(kMaReadLimit) +
                                 "-byte limit. Use the view_range parameter to read specific line "
                                 "ranges, e.g. view_range: [1, 500].");
  }
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return error_reply(q.id, "read: " + shown + ": " + lower_first(errno_text(errno)));
  std::string out;
  char* line = nullptr;
  size_t cap = 0;
  int64_t n = 0;
  bool over = false;
  for (ssize_t len; (len = ::getline(&line, &cap, f)) >= 0;) {
    ++n;
    if (n < first) continue;
    if (last > 0 && n > last) break;
    out.append(line, static_cast<size_t>(len));
    if (out.size() > kMaReadLimit) {
      over = true;
      break;
    }
  }
  std::free(line);
  std::fclose(f);
  if (over) {
    return error_reply(q.id, "read: view_range [" + std::to_string(q.view_range->first) + ", " +
                                 std::to_string(q.view_range->second) + "] of " + shown +
                                 " exceeds " + std::to_string(kMaReadLimit) +
                                 "-byte limit. Narrow the view_range to read a smaller portion.");
  }
  // Lines are joined by newlines: the range's last line keeps none after it (a whole file
  // keeps the one it ends with).
  if (q.view_range && !out.empty() && out.back() == '\n') out.pop_back();
  return ok_reply(q.id, std::move(out));
}

Reply do_read(const Request& q) {
  if (q.style == toolbox::Style::kManagedAgents) return do_read_managed(q);
  const std::string path = resolve(q.path);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return error_reply(q.id, "read " + path + ": " + errno_text(errno));
  if (S_ISDIR(st.st_mode)) {
    return error_reply(q.id, "read " + path + ": is a directory (list it with glob or bash)");
  }
  int64_t first = 1, last = -1;
  if (q.view_range) {
    first = q.view_range->first;
    last = q.view_range->second;
    if (first < 1 || (last != -1 && last < first)) {
      return error_reply(q.id, "read: view_range must be [start, end] with 1 <= start <= end, "
                               "or end = -1 for the rest of the file");
    }
  }
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return error_reply(q.id, "read " + path + ": " + errno_text(errno));
  std::string out;
  char* line = nullptr;
  size_t cap = 0;
  int64_t n = 0;
  bool truncated = false;
  for (ssize_t len; (len = ::getline(&line, &cap, f)) >= 0;) {
    ++n;
    if (n < first) continue;
    if (last != -1 && n > last) break;
    char num[32];
    std::snprintf(num, sizeof num, "%6lld\t", static_cast<long long>(n));
    out += num;
    out.append(line, static_cast<size_t>(len));
    if (out.empty() || out.back() != '\n') out += '\n';
    if (out.size() > kReadCap) {
      out.resize(kReadCap);
      truncated = true;
      break;
    }
  }
  std::free(line);
  std::fclose(f);
  if (truncated) {
    out += "\n[airlock: output truncated at 256 KiB; read further with view_range]\n";
  }
  if (out.empty()) out = n == 0 ? "(empty file)" : "(no lines in that range; the file has " +
                                                      std::to_string(n) + ")";
  return ok_reply(q.id, std::move(out));
}

bool make_parents(const std::string& path, std::string& error) {
  for (size_t i = 1; i < path.size(); ++i) {
    if (path[i] != '/') continue;
    const std::string dir = path.substr(0, i);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      error = "mkdir " + dir + ": " + errno_text(errno);
      return false;
    }
  }
  return true;
}

bool write_file(const std::string& path, std::string_view content, std::string& error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = errno_text(errno);
    return false;
  }
  const bool ok = write_all(fd, content);
  const int e = errno;
  ::close(fd);
  if (!ok) error = errno_text(e);
  return ok;
}

Reply do_write(const Request& q) {
  const std::string path = resolve(q.path);
  std::string error;
  std::string decoded;
  if (q.content_base64) {
    // EVP_DecodeBlock counts the padding's zero bytes in; they are taken off again.
    decoded.resize(3 * (q.content.size() / 4) + 3);
    const int n = ::EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                                    reinterpret_cast<const unsigned char*>(q.content.data()),
                                    static_cast<int>(q.content.size()));
    if (n < 0 || q.content.size() % 4 != 0)
      return error_reply(q.id, "write: content is not base64");
    size_t pad = 0;
    for (size_t i = q.content.size(); i > 0 && q.content[i - 1] == '=' && pad < 2; --i) ++pad;
    decoded.resize(static_cast<size_t>(n) - pad);
  }
  const std::string& content = q.content_base64 ? decoded : q.content;
  const bool managed = q.style == toolbox::Style::kManagedAgents;
  if (!make_parents(path, error) || !write_file(path, content, error)) {
    return error_reply(q.id, managed ? "write: " + q.path + ": " + lower_first(error)
                                     : "write " + path + ": " + error);
  }
  if (q.executable) ::chmod(path.c_str(), 0755);
  if (q.style == toolbox::Style::kManagedAgents) {
    return ok_reply(q.id, "wrote " + std::to_string(content.size()) + " bytes to " + q.path);
  }
  return ok_reply(q.id, "Wrote " + std::to_string(content.size()) + " bytes to " + path);
}

bool read_file(const std::string& path, std::string& out, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = errno_text(errno);
    return false;
  }
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = errno_text(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > toolbox::kMaxFrame) {
      error = "larger than edit handles (32 MiB)";
      ::close(fd);
      return false;
    }
  }
  ::close(fd);
  return true;
}

Reply do_edit(const Request& q) {
  const std::string path = resolve(q.path);
  if (q.old_string.empty()) return error_reply(q.id, "edit: old_string must not be empty");
  if (q.old_string == q.new_string) {
    return error_reply(q.id, "edit: old_string and new_string are the same; nothing to change");
  }
  std::string text, error;
  if (!read_file(path, text, error)) {
    if (q.style == toolbox::Style::kManagedAgents) {
      return error_reply(q.id, "edit: " + q.path + ": " + lower_first(error));
    }
    return error_reply(q.id, "edit " + path + ": " + error);
  }
  size_t count = 0;
  for (size_t at = text.find(q.old_string); at != std::string::npos;
       at = text.find(q.old_string, at + q.old_string.size())) {
    ++count;
  }
  const bool managed = q.style == toolbox::Style::kManagedAgents;
  if (count == 0 && managed) return error_reply(q.id, "edit: old_string not found in " + q.path);
  if (count > 1 && !q.replace_all && managed) {
    return error_reply(q.id, "edit: old_string appears " + std::to_string(count) + " times in " +
                                 q.path + " (must be unique)");
  }
  if (count == 0) {
    return error_reply(q.id, "edit " + path + ": old_string was not found (0 matches); read the "
                             "file and copy the text exactly, whitespace included");
  }
  if (count > 1 && !q.replace_all) {
    return error_reply(q.id, "edit " + path + ": old_string matches " + std::to_string(count) +
                             " times; add surrounding lines to make it unique, or set "
                             "replace_all to replace every one");
  }
  std::string out;
  out.reserve(text.size());
  size_t from = 0;
  for (size_t at = text.find(q.old_string); at != std::string::npos;
       at = text.find(q.old_string, from)) {
    out.append(text, from, at - from);
    out += q.new_string;
    from = at + q.old_string.size();
    if (!q.replace_all) break;
  }
  out.append(text, from, std::string::npos);
  if (!write_file(path, out, error)) return error_reply(q.id, "edit " + path + ": " + error);
  if (managed) {
    return ok_reply(q.id, "edited " + q.path + " (" + std::to_string(q.replace_all ? count : 1) +
                              " replacement(s))");
  }
  return ok_reply(q.id, "Replaced " + std::to_string(q.replace_all ? count : 1) +
                            " occurrence(s) in " + path);
}

// --- glob and grep (in a child process each) --------------------------------------------------

// Whether `segments[i..]` of a path match `pattern[j..]`, where "**" matches any number of
// whole segments.
bool match_segments(const std::vector<std::string>& pat, size_t j,
                    const std::vector<std::string>& path, size_t i) {
  if (j == pat.size()) return i == path.size();
  if (pat[j] == "**") {
    for (size_t k = i; k <= path.size(); ++k) {
      if (match_segments(pat, j + 1, path, k)) return true;
    }
    return false;
  }
  if (i == path.size()) return false;
  if (::fnmatch(pat[j].c_str(), path[i].c_str(), 0) != 0) return false;
  return match_segments(pat, j + 1, path, i + 1);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t from = 0;
  while (from <= s.size()) {
    size_t slash = s.find('/', from);
    if (slash == std::string::npos) slash = s.size();
    if (slash > from) out.push_back(s.substr(from, slash - from));
    from = slash + 1;
  }
  return out;
}

// Visits every entry under `base` (not following symbolic links to directories, not entering
// /proc, /sys or /dev), at most kWalkLimit of them; `visit` gets the path relative to base.
template <class Visit>
bool walk(const std::string& base, Visit visit) {
  size_t visited = 0;
  std::vector<std::string> stack{""};
  while (!stack.empty()) {
    const std::string rel = stack.back();
    stack.pop_back();
    const std::string dir = rel.empty() ? base : (base == "/" ? "/" + rel : base + "/" + rel);
    DIR* d = ::opendir(dir.c_str());
    if (!d) continue;
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (++visited > kWalkLimit) {
        ::closedir(d);
        return false;
      }
      const std::string child = rel.empty() ? name : rel + "/" + name;
      const std::string full = dir == "/" ? "/" + name : dir + "/" + name;
      struct stat st {};
      if (::lstat(full.c_str(), &st) != 0) continue;
      visit(child, full, st);
      if (S_ISDIR(st.st_mode) && !(full == "/proc" || full == "/sys" || full == "/dev")) {
        stack.push_back(child);
      }
    }
    ::closedir(d);
  }
  return true;
}

Reply do_glob(const Request& q) {
  std::string base = resolve(q.path);
  std::string pattern = q.pattern;
  if (pattern.empty()) return error_reply(q.id, "glob: pattern must not be empty");
  if (pattern[0] == '/') {
    base = "/";
    pattern = pattern.substr(1);
  }
  struct stat st {};
  if (::stat(base.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return error_reply(q.id, "glob: " + base + " is not a directory");
  }
  const auto pat = split(pattern);
  std::vector<std::pair<timespec, std::string>> found;
  const bool whole = walk(base, [&](const std::string& rel, const std::string& full,
                                    const struct stat& s) {
    if (match_segments(pat, 0, split(rel), 0)) found.emplace_back(s.st_mtim, full);
  });
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    if (a.first.tv_sec != b.first.tv_sec) return a.first.tv_sec > b.first.tv_sec;
    if (a.first.tv_nsec != b.first.tv_nsec) return a.first.tv_nsec > b.first.tv_nsec;
    return a.second < b.second;
  });
  std::string out;
  for (size_t i = 0; i < found.size() && i < kGlobResults; ++i) out += found[i].second + "\n";
  if (found.size() > kGlobResults) {
    out += "[airlock: " + std::to_string(found.size() - kGlobResults) +
           " more not shown; results are newest first, at most 200]\n";
  }
  if (!whole) out += "[airlock: stopped after visiting 200000 entries; narrow path or pattern]\n";
  if (found.empty()) out = "No files match '" + q.pattern + "' under " + base + "\n" + out;
  if (q.style == toolbox::Style::kManagedAgents) {
    if (found.empty()) return ok_reply(q.id, "no matches");
    out.clear();
    for (size_t i = 0; i < found.size() && i < kGlobResults; ++i) {
      out += (i ? "\n" : "") + found[i].second;
    }
  }
  return ok_reply(q.id, std::move(out));
}

Reply do_grep(const Request& q) {
  const std::string base = resolve(q.path);
  regex_t re;
  if (const int rc = ::regcomp(&re, q.pattern.c_str(), REG_EXTENDED | REG_NEWLINE | REG_NOSUB); rc != 0) {
    char why[256];
    ::regerror(rc, &re, why, sizeof why);
    return error_reply(q.id, "grep: pattern '" + q.pattern + "' is not a valid regular "
                             "expression (POSIX extended): " + why);
  }
  std::string out;
  bool truncated = false;
  size_t matches = 0;
  auto grep_file = [&](const std::string& full) {
    if (truncated) return;
    FILE* f = std::fopen(full.c_str(), "re");
    if (!f) return;
    char head[8192];
    const size_t got = std::fread(head, 1, sizeof head, f);
    if (std::memchr(head, 0, got)) {  // binary
      std::fclose(f);
      return;
    }
    std::rewind(f);
    char* line = nullptr;
    size_t cap = 0;
    size_t n = 0;
    for (ssize_t len; (len = ::getline(&line, &cap, f)) >= 0;) {
      ++n;
      if (len > 0 && line[len - 1] == '\n') line[len - 1] = 0;
      if (::regexec(&re, line, 0, nullptr, 0) != 0) continue;
      ++matches;
      out += full + ":" + std::to_string(n) + ":" + line + "\n";
      if (out.size() > kOutputCap) {
        out.resize(kOutputCap);
        truncated = true;
        break;
      }
    }
    std::free(line);
    std::fclose(f);
  };
  struct stat st {};
  if (::stat(base.c_str(), &st) != 0) {
    ::regfree(&re);
    return error_reply(q.id, "grep: " + base + ": " + errno_text(errno));
  }
  bool whole = true;
  if (S_ISDIR(st.st_mode)) {
    whole = walk(base, [&](const std::string&, const std::string& full, const struct stat& s) {
      if (S_ISREG(s.st_mode)) grep_file(full);
    });
  } else {
    grep_file(base);
  }
  ::regfree(&re);
  if (q.style == toolbox::Style::kManagedAgents) {
    if (matches == 0) return ok_reply(q.id, "no matches");
    if (truncated) {
      out += "\n[output truncated at " + std::to_string(kOutputCap) + " bytes]";
    } else if (!out.empty() && out.back() == '\n') {
      out.pop_back();
    }
    return ok_reply(q.id, std::move(out));
  }
  if (truncated) out += "\n[airlock: matches truncated at 100 KiB; narrow pattern or path]\n";
  if (!whole) out += "[airlock: stopped after visiting 200000 entries; narrow path]\n";
  if (matches == 0) out = "No matches for '" + q.pattern + "' under " + base + "\n" + out;
  return ok_reply(q.id, std::move(out));
}

// --- web_fetch (in a child process) -----------------------------------------------------------

struct Url {
  bool tls = false;
  std::string host, port, path;
};

bool parse_url(const std::string& text, Url& u, std::string& error) {
  std::string rest;
  if (text.rfind("https://", 0) == 0) {
    u.tls = true;
    rest = text.substr(8);
  } else if (text.rfind("http://", 0) == 0) {
    rest = text.substr(7);
  } else {
    error = "only http:// and https:// URLs can be fetched";
    return false;
  }
  const size_t slash = rest.find_first_of("/?#");
  std::string authority = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (u.path[0] != '/') u.path = "/" + u.path;
  if (const size_t hash = u.path.find('#'); hash != std::string::npos) u.path.resize(hash);
  if (authority.find('@') != std::string::npos) {
    error = "URLs with user information are not fetched";
    return false;
  }
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) {
      error = "malformed IPv6 address in the URL";
      return false;
    }
    u.host = authority.substr(0, close + 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') u.port = authority.substr(close + 2);
  } else {
    const size_t colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) u.port = authority.substr(colon + 1);
  }
  if (u.port.empty()) u.port = u.tls ? "443" : "80";
  if (u.host.empty()) {
    error = "the URL has no host";
    return false;
  }
  for (char c : u.host + u.port + u.path) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      error = "the URL contains spaces or control characters";
      return false;
    }
  }
  return true;
}

// The proxy's port from HTTP_PROXY ("http://127.0.0.1:PORT"), or 0.
int proxy_port() {
  const char* p = std::getenv("HTTP_PROXY");
  if (!p) return 0;
  const std::string s = p;
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos) return 0;
  return std::atoi(s.c_str() + colon + 1);
}

// Runs in its own process: the whole fetch, blocking; the result is the reply's text.
Reply do_fetch(const Request& q) {
  Url u;
  std::string error;
  if (!parse_url(q.url, u, error)) return error_reply(q.id, "web_fetch " + q.url + ": " + error);
  const int port = proxy_port();
  if (port == 0) {
    return error_reply(q.id, "web_fetch " + q.url + ": this sandbox reaches no host "
                             "(network.allowed_outbound in sandbox.yaml is empty)");
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return error_reply(q.id, "web_fetch " + q.url + ": cannot reach the sandbox's egress proxy: " +
                             errno_text(errno));
  }
  const std::string authority = u.host + ":" + u.port;
  auto read_head = [&](std::string& head) -> bool {
    char c;
    while (head.size() < 64 * 1024) {
      const ssize_t n = ::read(fd, &c, 1);
      if (n <= 0) return false;
      head.push_back(c);
      if (head.size() >= 4 && head.compare(head.size() - 4, 4, "\r\n\r\n") == 0) return true;
    }
    return false;
  };
  auto status_of = [](const std::string& head) {
    const size_t sp = head.find(' ');
    return sp == std::string::npos ? 0 : std::atoi(head.c_str() + sp + 1);
  };
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  if (u.tls) {
    const std::string connect = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
    std::string head;
    if (!write_all(fd, connect) || !read_head(head)) {
      return error_reply(q.id, "web_fetch " + q.url + ": the egress proxy closed the connection");
    }
    if (status_of(head) != 200) {
      std::string reason;
      char buf[4096];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) reason.assign(buf, static_cast<size_t>(n));
      while (!reason.empty() && (reason.back() == '\n' || reason.back() == '\r')) reason.pop_back();
      return error_reply(q.id, "web_fetch " + q.url + ": refused by the sandbox's egress proxy: " +
                               (reason.empty() ? head : reason));
    }
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_default_verify_paths(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    ssl = SSL_new(ctx);
    std::string bare = u.host;
    if (!bare.empty() && bare[0] == '[') bare = bare.substr(1, bare.size() - 2);
    SSL_set_tlsext_host_name(ssl, bare.c_str());
    SSL_set1_host(ssl, bare.c_str());
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
      const long v = SSL_get_verify_result(ssl);
      const char* reason = v != X509_V_OK ? X509_verify_cert_error_string(v)
                                          : ERR_reason_error_string(ERR_peek_last_error());
      return error_reply(q.id, "web_fetch " + q.url + ": TLS with " + u.host + " failed: " +
                                   (reason ? reason : "the handshake did not complete"));
    }
  }
  const std::string target = u.tls ? u.path : "http://" + authority + u.path;
  const std::string request = "GET " + target + " HTTP/1.0\r\nHost: " + authority +
                              "\r\nUser-Agent: airlock-web-fetch\r\nAccept: */*\r\n"
                              "Connection: close\r\n\r\n";
  auto send = [&](std::string_view d) {
    if (!ssl) return write_all(fd, d);
    while (!d.empty()) {
      const int n = SSL_write(ssl, d.data(), static_cast<int>(d.size()));
      if (n <= 0) return false;
      d.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  };
  if (!send(request)) return error_reply(q.id, "web_fetch " + q.url + ": the request could not be sent");
  std::string response;
  bool truncated = false;
  char buf[16 * 1024];
  for (;;) {
    const int n = ssl ? SSL_read(ssl, buf, sizeof buf) : static_cast<int>(::read(fd, buf, sizeof buf));
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
    if (response.size() > kFetchCap + 64 * 1024) {
      truncated = true;
      break;
    }
  }
  const size_t end = response.find("\r\n\r\n");
  if (end == std::string::npos) {
    return error_reply(q.id, "web_fetch " + q.url + ": no HTTP response came back");
  }
  const std::string head = response.substr(0, end);
  std::string body = response.substr(end + 4);
  const int status = status_of(head);
  if (!ssl && status >= 400 && body.rfind("airlock egress: ", 0) == 0) {
    return error_reply(q.id, "web_fetch " + q.url + ": refused by the sandbox's egress proxy: " +
                             body);
  }
  if (body.size() > kFetchCap) {
    body.resize(kFetchCap);
    truncated = true;
  }
  std::string text = "HTTP " + std::to_string(status) + "\n";
  std::string lower = head;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  for (const char* h : {"content-type:", "location:"}) {
    if (const size_t at = lower.find(std::string("\r\n") + h); at != std::string::npos) {
      const size_t eol = head.find("\r\n", at + 2);
      text += head.substr(at + 2, eol - at - 2) + "\n";
    }
  }
  text += "\n" + body;
  if (truncated) text += "\n[airlock: body truncated at 100 KiB]\n";
  Reply r = ok_reply(q.id, std::move(text));
  r.is_error = status >= 400;
  return r;
}

// --- the toolbox -----------------------------------------------------------------------------

// A call running in a child: a worker (glob, grep, web_fetch) that writes its encoded reply, or
// a custom tool's command whose output is the result.
struct Job {
  uint64_t id = 0;
  Op op = Op::kExec;
  Child child;
  std::string output;
  bool truncated = false;
  Clock::time_point started, deadline, next_progress;
  bool timed_out = false, cancelled = false;
};

// The session's shell and the bash call running in it.
struct BashCall {
  Request request;
  std::string token;
  std::string output;
  std::string tail;  // output past the cap, kept only to find the end marker
  size_t tail_kept = 0;  // how many of tail's first bytes are also the end of `output`
  bool truncated = false;
  Clock::time_point started, deadline, next_progress;
  Clock::time_point give_up = Clock::time_point::max();  // the shell itself is killed then
  std::set<ProcessId> before;
  std::string stopped;  // why its processes were killed: "timed out …", "cancelled"
  // Style::kManagedAgents: output is held back only as far as the end marker could reach; what
  // is past kMaBashLimit goes, whole, to a file in /tmp the agent can read with view_range.
  std::string held;
  size_t line_breaks = 0;
  int saved_fd = -1;
  std::string saved_path;
  size_t saved_bytes = 0;
};

constexpr size_t kMaBashLimit = 30'000;     // characters of output a result shows
constexpr size_t kMaBashSaved = 32u << 20;  // bytes of output kept in the saved file

// ESC [ … final byte: the colour and cursor sequences of a terminal.
std::string without_ansi(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\x1b' && i + 1 < text.size() && text[i + 1] == '[') {
      size_t j = i + 2;
      while (j < text.size() &&
             ((text[j] >= '0' && text[j] <= '9') || text[j] == ';' || text[j] == '?'))
        ++j;
      while (j < text.size() && text[j] >= 0x20 && text[j] <= 0x2f) ++j;
      if (j < text.size() && text[j] >= 0x40 && text[j] <= 0x7e) {
        i = j;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

class Toolbox {
 public:
  explicit Toolbox(int channel) : channel_(channel) {
    ::fcntl(channel_, F_SETFL, O_NONBLOCK);
    ::mkdir("/tmp/.airlock", 0700);
  }

  int run() {
    // The shell starts now, while nobody waits for it (if it cannot, the first bash call tries
    // again and says why); then the agent hears the toolbox is up.
    std::string ignored;
    if (start_shell(ignored)) warm_up();
    send(ok_reply(0, "ready"));
    flush();
    for (;;) {
      if (channel_closed_ && out_.empty()) return 0;
      std::vector<pollfd> fds;
      fds.push_back({channel_, static_cast<short>((channel_closed_ ? 0 : POLLIN) |
                                                   (out_.empty() ? 0 : POLLOUT)),
                     0});
      const size_t shell_at = fds.size();
      if (shell_out_ >= 0) fds.push_back({shell_out_, POLLIN, 0});
      const size_t jobs_at = fds.size();
      for (auto& j : jobs_) {
        fds.push_back({j.child.out >= 0 ? j.child.out : j.child.pidfd, POLLIN, 0});
      }
      const int timeout = next_timeout();
      const int n = ::poll(fds.data(), fds.size(), timeout);
      if (n < 0 && errno != EINTR) return 1;
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) read_channel();
      if (fds[0].revents & POLLOUT) flush();
      if (shell_out_ >= 0 && shell_at < fds.size() && fds[shell_at].revents) read_shell();
      for (size_t i = 0; i < jobs_.size() && jobs_at + i < fds.size(); ++i) {
        if (fds[jobs_at + i].revents) read_job(jobs_[i]);
      }
      finish_jobs();
      tick();
      if (!bash_ && !bash_queue_.empty()) start_bash();
      flush();
    }
  }

 private:
  int next_timeout() const {
    auto next = Clock::time_point::max();
    if (bash_) next = std::min({next, bash_->deadline, bash_->next_progress, bash_->give_up});
    for (const auto& j : jobs_) next = std::min({next, j.deadline, j.next_progress});
    if (next == Clock::time_point::max()) return -1;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
    return static_cast<int>(std::max<int64_t>(0, ms.count()) + 1);
  }

  void send(const Reply& r) { out_ += toolbox::encode(r); }

  void flush() {
    while (!out_.empty()) {
      const ssize_t n = ::send(channel_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) {  // the agent is gone
        out_.clear();
        channel_closed_ = true;
        return;
      }
      out_.erase(0, static_cast<size_t>(n));
    }
  }

  void read_channel() {
    char buf[64 * 1024];
    for (;;) {
      const ssize_t n = ::read(channel_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) {
        channel_closed_ = true;
        out_.clear();
        return;
      }
      if (!reader_.feed({buf, static_cast<size_t>(n)})) {
        channel_closed_ = true;  // a frame too large: the agent is not speaking the protocol
        return;
      }
    }
    while (auto frame = reader_.next()) {
      Request q;
      std::string error;
      if (!toolbox::parse_request(*frame, q, error)) {
        send(error_reply(q.id, "toolbox: malformed request: " + error));
        continue;
      }
      handle(std::move(q));
    }
  }

  void handle(Request q) {
    switch (q.op) {
      case Op::kRead: send(do_read(q)); return;
      case Op::kWrite: send(do_write(q)); return;
      case Op::kEdit: send(do_edit(q)); return;
      case Op::kGlob: start_worker(std::move(q), do_glob); return;
      case Op::kGrep: start_worker(std::move(q), do_grep); return;
      case Op::kFetch: start_worker(std::move(q), do_fetch); return;
      case Op::kExec: start_exec(std::move(q)); return;
      case Op::kBash: bash_queue_.push_back(std::move(q)); return;
      case Op::kCancel: cancel(q.target); return;
    }
  }

  void cancel(uint64_t target) {
    if (bash_ && bash_->request.id == target) {
      stop_bash("cancelled");
      return;
    }
    for (auto it = bash_queue_.begin(); it != bash_queue_.end(); ++it) {
      if (it->id == target) {
        send(error_reply(target, "cancelled before it started"));
        bash_queue_.erase(it);
        return;
      }
    }
    for (auto& j : jobs_) {
      if (j.id == target && !j.cancelled) {
        j.cancelled = true;
        kill_tree(j.child.pid);
      }
    }
  }

  template <class Work>
  void start_worker(Request q, Work work) {
    Job j;
    j.id = q.id;
    j.op = q.op;
    std::string error;
    const Request copy = q;
    if (!spawn(j.child, [&]() -> int {
          Reply r;
          try {
            r = work(copy);
          } catch (const std::exception& e) {
            r = error_reply(copy.id, std::string(to_string(copy.op)) + " failed: " + e.what());
          }
          return write_all(1, toolbox::encode(r)) ? 0 : 1;
        }, error)) {
      send(error_reply(q.id, std::string(to_string(q.op)) + ": " + error));
      return;
    }
    arm(j, q.op == Op::kFetch ? q.timeout_ms : 600'000);
    jobs_.push_back(std::move(j));
  }

  void start_exec(Request q) {
    if (q.argv.empty()) {
      send(error_reply(q.id, "exec: no command"));
      return;
    }
    Job j;
    j.id = q.id;
    j.op = Op::kExec;
    std::vector<char*> argv;
    for (auto& a : q.argv) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string error;
    if (!spawn(j.child, [&]() -> int {
          if (::chdir("/workspace") != 0) return 126;
          ::setpgid(0, 0);
          ::execvp(argv[0], argv.data());
          const int e = errno;
          std::string msg = std::string("cannot run ") + argv[0] + ": " + std::strerror(e) + "\n";
          write_all(2, msg);
          return e == ENOENT ? 127 : 126;
        }, error)) {
      send(error_reply(q.id, "exec: " + error));
      return;
    }
    arm(j, q.timeout_ms);
    jobs_.push_back(std::move(j));
  }

  void arm(Job& j, uint64_t timeout_ms) {
    j.started = Clock::now();
    j.deadline = j.started + std::chrono::milliseconds(timeout_ms);
    j.next_progress = j.started + kProgressEvery;
  }

  void read_job(Job& j) {
    if (j.child.out < 0) {
      reap(j);
      return;
    }
    char buf[64 * 1024];
    for (;;) {
      const ssize_t n = ::read(j.child.out, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) {
        ::close(j.child.out);
        j.child.out = -1;
        reap(j);
        return;
      }
      // A worker's reply is bounded by the frame limit; a command's output by the cap.
      const size_t cap = j.op == Op::kExec ? kOutputCap : toolbox::kMaxFrame;
      const size_t room = cap > j.output.size() ? cap - j.output.size() : 0;
      j.output.append(buf, std::min(room, static_cast<size_t>(n)));
      if (static_cast<size_t>(n) > room) j.truncated = true;
    }
  }

  void reap(Job& j) {
    if (j.child.exited) return;
    int status = 0;
    if (::waitpid(j.child.pid, &status, WNOHANG) == j.child.pid) {
      j.child.exited = true;
      j.child.status = status;
    }
  }

  void finish_jobs() {
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      Job& j = *it;
      if (j.child.out >= 0 || !j.child.exited) {
        ++it;
        continue;
      }
      const int code = WIFEXITED(j.child.status) ? WEXITSTATUS(j.child.status)
                                                : 128 + WTERMSIG(j.child.status);
      Reply r;
      r.id = j.id;
      if (j.op == Op::kExec) {
        r.text = j.output;
        if (j.truncated) r.text += "\n[airlock: output truncated at 100 KiB]\n";
        r.exit_code = code;
        r.is_error = code != 0;
      } else if (!j.timed_out && !j.cancelled) {
        std::string error;
        if (j.output.size() < 4 ||
            !toolbox::parse_reply(std::string_view(j.output).substr(4), r, error)) {
          r = error_reply(j.id, std::string(to_string(j.op)) + " failed (exit status " +
                                    std::to_string(code) + ")");
        }
        r.id = j.id;
      }
      if (j.timed_out) {
        r.is_error = true;
        r.text += "\n[airlock: " + std::string(to_string(j.op)) + " timed out; its processes "
                  "were killed]\n";
      } else if (j.cancelled) {
        r.is_error = true;
        r.text += "\n[airlock: cancelled; its processes were killed]\n";
      }
      send(r);
      j.child.close_all();
      it = jobs_.erase(it);
    }
  }

  void tick() {
    const auto now = Clock::now();
    for (auto& j : jobs_) {
      if (!j.timed_out && !j.cancelled && now >= j.deadline) {
        j.timed_out = true;
        kill_tree(j.child.pid);
      }
      if (now >= j.next_progress) {
        j.next_progress = now + kProgressEvery;
        progress(j.id, j.started);
      }
    }
    if (bash_) {
      if (bash_->stopped.empty() && now >= bash_->deadline) {
        stop_bash("timed out after " + std::to_string(bash_->request.timeout_ms) + " ms");
      }
      if (bash_ && now >= bash_->give_up) {
        // The command did not come back after its processes were killed: it runs in the shell
        // itself (a builtin loop). The shell goes too; the next call starts a new one.
        end_bash_with_shell_lost("the shell did not come back and was restarted: its working "
                                 "directory and variables are reset");
      }
      if (bash_ && now >= bash_->next_progress) {
        bash_->next_progress = now + kProgressEvery;
        progress(bash_->request.id, bash_->started);
      }
    }
  }

  void progress(uint64_t id, Clock::time_point started) {
    Reply r;
    r.id = id;
    r.progress = true;
    r.elapsed_ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
    send(r);
  }

  // --- bash ---

  // One command through the shell, the way every call goes, before the agent is told the
  // toolbox is up: the first real call then finds the shell and the paths it takes warm.
  void warm_up() {
    Request q;
    q.command = ":";
    q.timeout_ms = 5000;
    bash_queue_.push_back(std::move(q));
    start_bash();
    const auto until = Clock::now() + std::chrono::seconds(5);
    while (bash_ && Clock::now() < until) {
      pollfd p{shell_out_, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) read_shell();
    }
    out_.clear();  // its reply (id 0) is not for the agent
    if (bash_) end_bash_with_shell_lost("the shell did not start");
    out_.clear();
  }

  bool start_shell(std::string& error) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
      error = "pipe2: " + errno_text(errno);
      return false;
    }
    const bool bash = ::access("/bin/bash", X_OK) == 0;
    const pid_t pid = ::fork();
    if (pid < 0) {
      error = "fork: " + errno_text(errno);
      return false;
    }
    if (pid == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::syscall(SYS_close_range, 3u, ~0u, 0u);
      if (::chdir("/workspace") != 0) ::_exit(126);
      if (bash) {
        const char* argv[] = {"bash", "--noprofile", "--norc", nullptr};
        ::execve("/bin/bash", const_cast<char**>(argv), environ);
      }
      const char* argv[] = {"sh", nullptr};
      ::execve("/bin/sh", const_cast<char**>(argv), environ);
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    shell_pid_ = pid;
    shell_in_ = in[1];
    shell_out_ = out[0];
    ::fcntl(shell_out_, F_SETFL, O_NONBLOCK);
    return true;
  }

  void kill_shell() {
    if (shell_pid_ > 0) {
      kill_tree(shell_pid_);
      int st;
      ::waitpid(shell_pid_, &st, 0);
    }
    if (shell_in_ >= 0) ::close(shell_in_);
    if (shell_out_ >= 0) ::close(shell_out_);
    shell_pid_ = -1;
    shell_in_ = shell_out_ = -1;
  }

  void start_bash() {
    Request q = std::move(bash_queue_.front());
    bash_queue_.pop_front();
    if (q.restart) {
      kill_shell();
      if (q.command.empty()) {
        send(ok_reply(q.id, "The shell was restarted."));
        return;
      }
    }
    if (q.command.empty()) {
      send(error_reply(q.id, "bash: command must not be empty"));
      return;
    }
    std::string error;
    if (shell_pid_ < 0 && !start_shell(error)) {
      send(error_reply(q.id, "bash: cannot start the shell: " + error));
      return;
    }
    // The command goes in a file the shell sources: a syntax error in it ends only the command,
    // its stdin is /dev/null (it cannot read what follows), and the end marker carries a token
    // the command does not know.
    const std::string file = "/tmp/.airlock/command";
    if (!write_file(file, q.command + "\n", error)) {
      send(error_reply(q.id, "bash: cannot write the command: " + error));
      return;
    }
    BashCall call;
    call.token = random_token();
    call.started = Clock::now();
    call.deadline = call.started + std::chrono::milliseconds(q.timeout_ms);
    call.next_progress = call.started + kProgressEvery;
    call.before = process_ids();
    call.request = std::move(q);
    const std::string line = ". " + file + " </dev/null; printf '\\n__airlock_end_%s %d\\n' '" +
                             call.token + "' \"$?\"\n";
    bash_ = std::move(call);
    if (!write_all(shell_in_, line)) end_bash_with_shell_lost("the shell exited");
  }

  void read_shell() {
    char buf[64 * 1024];
    for (;;) {
      const ssize_t n = ::read(shell_out_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) {
        // The shell exited (the command ran `exit`, or it was killed).
        int status = 0;
        ::waitpid(shell_pid_, &status, 0);
        shell_pid_ = -1;
        ::close(shell_in_);
        ::close(shell_out_);
        shell_in_ = shell_out_ = -1;
        if (bash_) {
          const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          finish_bash(code, "[airlock: the shell exited with status " + std::to_string(code) +
                                "; the next call starts a new one]");
        }
        return;
      }
      if (!bash_) continue;  // output of a background job between calls: dropped
      take_output({buf, static_cast<size_t>(n)});
      if (!bash_) return;
    }
  }

  // Appends shell output to the running call, and ends the call at its end marker. Past the
  // cap, output is only searched for the marker: `tail` keeps the last bytes, starting with
  // the last kMarkerRoom bytes of what was kept, so a marker split across the cap is found.
  // Style::kManagedAgents: `bytes` are final output (no marker in them).
  void keep_managed(BashCall& c, std::string_view bytes) {
    c.line_breaks += static_cast<size_t>(std::count(bytes.begin(), bytes.end(), '\n'));
    if (c.saved_fd < 0 && c.output.size() + bytes.size() > kMaBashLimit) {
      char dir[] = "/tmp/bash-output-XXXXXX";
      if (::mkdtemp(dir)) {
        c.saved_path = std::string(dir) + "/" + random_token() + ".txt";
        c.saved_fd = ::open(c.saved_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (c.saved_fd >= 0) {
          write_all(c.saved_fd, c.output);
          c.saved_bytes = c.output.size();
        }
      }
    }
    if (c.saved_fd >= 0 && c.saved_bytes < kMaBashSaved) {
      const size_t n = std::min(bytes.size(), kMaBashSaved - c.saved_bytes);
      write_all(c.saved_fd, bytes.substr(0, n));
      c.saved_bytes += bytes.size();
    } else if (c.saved_fd >= 0) {
      c.saved_bytes += bytes.size();
    }
    if (c.output.size() < kMaBashLimit + 4) {
      c.output.append(bytes.substr(0, kMaBashLimit + 4 - c.output.size()));
    }
  }

  void take_output_managed(std::string_view data) {
    BashCall& c = *bash_;
    const std::string marker = "\n__airlock_end_" + c.token + " ";
    c.held.append(data);
    const size_t at = c.held.find(marker);
    if (at != std::string::npos) {
      const size_t eol = c.held.find('\n', at + marker.size());
      if (eol == std::string::npos) {
        keep_managed(c, std::string_view(c.held).substr(0, at));
        c.held.erase(0, at);
        return;
      }
      const int code = std::atoi(c.held.c_str() + at + marker.size());
      keep_managed(c, std::string_view(c.held).substr(0, at));
      c.held.clear();
      finish_bash(code, "");
      return;
    }
    // Everything but what a marker split across reads could have begun with is final.
    const size_t keep_back = marker.size() + 16;
    if (c.held.size() > keep_back) {
      keep_managed(c, std::string_view(c.held).substr(0, c.held.size() - keep_back));
      c.held.erase(0, c.held.size() - keep_back);
    }
  }

  // The result text of a managed-style bash call, as the reference workers word it.
  static std::string managed_text(BashCall& c) {
    if (c.saved_fd < 0) {
      std::string text = without_ansi(c.output);
      while (!text.empty() && text.back() == '\n') text.pop_back();
      return text;
    }
    ::close(c.saved_fd);
    c.saved_fd = -1;
    size_t end = std::min(kMaBashLimit, c.output.size());
    while (end > 0 && end < c.output.size() &&
           (static_cast<unsigned char>(c.output[end]) & 0xC0) == 0x80) {
      --end;
    }
    const std::string kept = c.output.substr(0, end);
    const size_t cut =
        1 + c.line_breaks - static_cast<size_t>(std::count(kept.begin(), kept.end(), '\n'));
    const std::string what =
        c.saved_bytes > kMaBashSaved ? "First 32 MiB of output" : "Full output";
    return without_ansi(kept) + "\n\n... [" + std::to_string(cut) + " lines truncated] " + what +
           " saved to: " + c.saved_path +
           " \u2014 use read with view_range to read specific portions. ...";
  }

  void take_output(std::string_view data) {
    static constexpr size_t kMarkerRoom = 128;
    if (bash_->request.style == toolbox::Style::kManagedAgents) return take_output_managed(data);
    BashCall& c = *bash_;
    const std::string marker = "\n__airlock_end_" + c.token + " ";
    std::string& where = c.truncated ? c.tail : c.output;
    // (A marker may have arrived without its status digits: look again from before it.)
    const size_t back = marker.size() + 16;
    const size_t search_from = where.size() > back ? where.size() - back : 0;
    where.append(data);
    const size_t at = where.find(marker, search_from);
    if (at != std::string::npos) {
      const size_t eol = where.find('\n', at + marker.size());
      if (eol == std::string::npos) return;  // the status digits are still coming
      const int code = std::atoi(where.c_str() + at + marker.size());
      if (!c.truncated) {
        c.output.resize(at);
      } else if (at < c.tail_kept) {
        // The marker began inside the kept output.
        c.output.resize(c.output.size() - (c.tail_kept - at));
      }
      c.tail.clear();
      finish_bash(code, "");
      return;
    }
    if (!c.truncated && c.output.size() > kOutputCap) {
      c.tail = c.output.substr(kOutputCap - kMarkerRoom);
      c.tail_kept = kMarkerRoom;
      c.output.resize(kOutputCap);
      c.truncated = true;
    }
    if (c.truncated && c.tail.size() > 64 * 1024) {
      const size_t drop = c.tail.size() - kMarkerRoom;
      c.tail.erase(0, drop);
      c.tail_kept = drop >= c.tail_kept ? 0 : c.tail_kept - drop;
    }
  }

  void stop_bash(const std::string& why) {
    BashCall& c = *bash_;
    c.stopped = why;
    kill_new_processes(c.before, shell_pid_);
    c.give_up = Clock::now() + kShellGrace;
    c.deadline = Clock::time_point::max();
  }

  void end_bash_with_shell_lost(const std::string& why) {
    kill_shell();
    finish_bash(137, "[airlock: " + why + "]");
  }

  void finish_bash(int code, const std::string& note) {
    BashCall c = std::move(*bash_);
    bash_.reset();
    Reply r;
    r.id = c.request.id;
    if (c.request.style == toolbox::Style::kManagedAgents) {
      keep_managed(c, c.held);  // the shell ended without a marker: what it wrote is final
      r.text = managed_text(c);
    } else {
      r.text = std::move(c.output);
    }
    if (c.truncated) r.text += "\n[airlock: output truncated at 100 KiB]";
    if (!c.stopped.empty()) {
      r.is_error = true;
      r.text += "\n[airlock: the command " + c.stopped + "; every process it started was killed]";
    }
    if (!note.empty()) r.text += (r.text.empty() ? "" : "\n") + note;
    r.exit_code = code;
    send(r);
  }

  int channel_;
  bool channel_closed_ = false;
  toolbox::FrameReader reader_;
  std::string out_;
  pid_t shell_pid_ = -1;
  int shell_in_ = -1, shell_out_ = -1;
  std::optional<BashCall> bash_;
  std::deque<Request> bash_queue_;
  std::vector<Job> jobs_;
};

}  // namespace

int run_toolbox(int channel) {
  ::signal(SIGPIPE, SIG_IGN);
  Toolbox box(channel);
  return box.run();
}

}  // namespace airlock::sandbox
