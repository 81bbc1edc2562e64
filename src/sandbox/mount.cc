// Mount namespace and the root filesystem. The new root is a small tmpfs (so that mount points
// can be made without touching the image) holding read-only binds of the image's top-level
// directories — or of the host's system directories for image "host" — plus /workspace
// (read-write), /tmp (tmpfs), a fresh /proc for the run's PID namespace, and a minimal /dev.
// The tmpfs is then made read-only and becomes / through pivot_root; the old root is detached,
// so nothing of the host outside these binds is reachable by any path.
//
// For image "host", /etc is an allow-list: its regular files and symlinks are copied once into
// a directory of the agent's (RootPlan::cache_dir, etc-KEY, where KEY hashes every entry's
// device, inode, size, times and mode, so that any change on the host makes a fresh copy) and
// that copy is bound read-only at /etc; its directories, and files over 256 KiB, are bound over
// placeholders in it, live from the host. Copying per run was a third of a run's set-up.
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string_view>
#include <vector>

#include "sandbox/steps.h"

namespace airlock::sandbox {
namespace {

// Top-level names the sandbox provides itself, whatever the image has there.
constexpr std::string_view kOwnEntries[] = {"proc", "dev",  "tmp",           "workspace",
                                            "sys",  "run",  ".airlock-toolbox"};
// The host's directories for image "host"; /etc is added entry by entry (below).
constexpr const char* kHostDirs[] = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"};
// /etc entries a program commonly needs; the rest of /etc (shadow, ssh host keys, TLS private
// keys in ssl/private, the machine's configuration) stays out of reach.
constexpr const char* kHostEtc[] = {
    "passwd",  "group",     "nsswitch.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
    "ssl/certs", "ssl/openssl.cnf", "ca-certificates", "ca-certificates.conf", "alternatives",
    "localtime", "timezone", "mime.types", "profile", "bash.bashrc", "inputrc", "terminfo",
    "services", "protocols", "os-release", "debian_version", "login.defs", "magic", "mailcap",
};
constexpr const char* kDevices[] = {"null", "zero", "full", "random", "urandom"};

// The source's mount flags that a user namespace may not clear (the kernel locks them), kept
// on every remount; MS_NOSUID | MS_NODEV added.
unsigned long locked_flags(const std::string& source) {
  struct statvfs st {};
  unsigned long flags = MS_NOSUID | MS_NODEV;
  if (::statvfs(source.c_str(), &st) != 0) return flags;
  if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return flags;
}

Status do_mount(const char* source, const std::string& target, const char* fstype,
                unsigned long flags, const char* data, std::string_view what) {
  if (::mount(source, target.c_str(), fstype, flags, data) != 0) {
    return Status::Sys("mount", std::string(what) + " -> " + target, errno);
  }
  return Status::Ok();
}

Status bind(const std::string& source, const std::string& target, bool read_only) {
  if (auto s = do_mount(source.c_str(), target, nullptr, MS_BIND, nullptr, "bind " + source);
      !s.ok()) {
    return s;
  }
  const unsigned long flags =
      MS_REMOUNT | MS_BIND | locked_flags(source) | (read_only ? MS_RDONLY : 0);
  return do_mount(nullptr, target, nullptr, flags, nullptr,
                  std::string("remount ") + (read_only ? "ro" : "rw") + ",nosuid,nodev");
}

Status make_dir(const std::string& path, mode_t mode = 0755) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return Status::Sys("mkdir", path, errno);
  return Status::Ok();
}

Status make_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Status::Sys("open", path + ", O_CREAT", errno);
  ::close(fd);
  return Status::Ok();
}

// Copies a regular file of at most kMaxCopy bytes (the /etc copy's files; larger ones are bound).
constexpr off_t kMaxCopy = 256 * 1024;

Status copy_file(const std::string& source, const std::string& target, const struct stat& st) {
  const int in = ::open(source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0) return Status::Sys("open", source, errno);
  const int out = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         st.st_mode & 0644);
  if (out < 0) {
    const int e = errno;
    ::close(in);
    return Status::Sys("open", target + ", O_CREAT", e);
  }
  char buf[64 * 1024];
  Status result;
  for (off_t copied = 0;;) {
    const ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result = Status::Sys("read", source, errno);
      break;
    }
    if (n == 0) break;
    if ((copied += n) > kMaxCopy) {
      result = Status::Error(source + " grew past " + std::to_string(kMaxCopy) + " bytes while copied");
      break;
    }
    if (::write(out, buf, static_cast<size_t>(n)) != n) {
      result = Status::Sys("write", target, errno);
      break;
    }
  }
  ::close(in);
  ::close(out);
  return result;
}

// Places `source` (a directory, file or symlink) at `target`: directories and files as
// bind mounts, symlinks recreated with the same text (resolved later inside the new root).
// Anything else (device nodes, sockets, fifos) is left out.
Status place(const std::string& source, const std::string& target, bool read_only,
             bool& placed) {
  placed = false;
  struct stat st {};
  if (::lstat(source.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::Sys("lstat", source, errno);
  }
  if (S_ISLNK(st.st_mode)) {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink(source.c_str(), buf, sizeof buf - 1);
    if (n < 0) return Status::Sys("readlink", source, errno);
    if (::symlink(std::string(buf, n).c_str(), target.c_str()) != 0) {
      return Status::Sys("symlink", target, errno);
    }
    placed = true;
    return Status::Ok();
  }
  if (S_ISDIR(st.st_mode)) {
    if (auto s = make_dir(target); !s.ok()) return s;
  } else if (S_ISREG(st.st_mode)) {
    if (auto s = make_file(target); !s.ok()) return s;
  } else {
    return Status::Ok();
  }
  placed = true;
  return bind(source, target, read_only);
}

Status populate_from_image(const std::string& image, const std::string& root) {
  DIR* dir = ::opendir(image.c_str());
  if (!dir) return Status::Sys("opendir", image, errno);
  Status result;
  while (dirent* e = ::readdir(dir)) {
    const std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    bool own = false;
    for (auto o : kOwnEntries) own = own || name == o;
    if (own) continue;
    bool placed = false;
    result = place(image + "/" + std::string(name), root + "/" + std::string(name), true, placed);
    if (!result.ok()) break;
  }
  ::closedir(dir);
  return result;
}

// --- image "host": the /etc allow-list ------------------------------------------------------

// One allow-listed /etc entry as found on the host.
struct EtcEntry {
  std::string name;  // below /etc, e.g. "ssl/certs"
  struct stat st;
  // Directories and large files are bound from the host over a placeholder in the copy.
  bool bound() const { return S_ISDIR(st.st_mode) || (S_ISREG(st.st_mode) && st.st_size > kMaxCopy); }
};

// A finished copy's directory carries this modification time; adding or removing anything in
// it (a /tmp cleaner, say) changes it, and the copy is made again.
constexpr time_t kEtcCopyMark = 1;

// etc-KEY: KEY is an FNV-1a hash over every entry's name and kind, and for what is copied its
// device, inode, size, mode and times. Any change on the host (an edit, a replacement by
// rename, a new entry) gives another key; a bound entry is read live and only its kind counts.
std::string etc_copy_name(const std::vector<EtcEntry>& entries) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](const void* data, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      h ^= static_cast<const unsigned char*>(data)[i];
      h *= 1099511628211ull;
    }
  };
  for (const auto& e : entries) {
    mix(e.name.c_str(), e.name.size() + 1);
    const uint64_t kind = e.bound() ? (e.st.st_mode & S_IFMT) | 1u : e.st.st_mode;
    mix(&kind, sizeof kind);
    if (e.bound()) continue;
    const int64_t id[] = {static_cast<int64_t>(e.st.st_dev), static_cast<int64_t>(e.st.st_ino),
                          e.st.st_size, e.st.st_mtim.tv_sec, e.st.st_mtim.tv_nsec,
                          e.st.st_ctim.tv_sec, e.st.st_ctim.tv_nsec};
    mix(id, sizeof id);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string("etc-") + hex;
}

// Makes `copy` from `entries`: built aside (etc-tmp-*) and renamed into place, so that a run
// never binds a half-made copy; if another run renamed its copy first, that one is used. Old
// copies and builds abandoned more than a minute ago are removed.
Status build_etc_copy(const std::vector<EtcEntry>& entries, const std::string& cache_dir,
                      const std::string& copy) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string tmp = cache_dir + "/etc-tmp-XXXXXX";
  if (!::mkdtemp(tmp.data())) return Status::Sys("mkdtemp", tmp, errno);
  Status result;
  if (::chmod(tmp.c_str(), 0755) != 0) result = Status::Sys("chmod", tmp, errno);
  for (const auto& e : entries) {
    if (!result.ok()) break;
    const std::string source = "/etc/" + e.name;
    const std::string target = tmp + "/" + e.name;
    for (size_t slash = e.name.find('/'); result.ok() && slash != std::string::npos;
         slash = e.name.find('/', slash + 1)) {
      result = make_dir(tmp + "/" + e.name.substr(0, slash));
    }
    if (!result.ok()) break;
    if (S_ISLNK(e.st.st_mode)) {
      char buf[PATH_MAX];
      const ssize_t n = ::readlink(source.c_str(), buf, sizeof buf - 1);
      if (n < 0) result = Status::Sys("readlink", source, errno);
      else if (::symlink(std::string(buf, n).c_str(), target.c_str()) != 0) {
        result = Status::Sys("symlink", target, errno);
      }
    } else if (S_ISDIR(e.st.st_mode)) {
      result = make_dir(target);
    } else if (e.bound()) {
      result = make_file(target);
    } else {
      result = copy_file(source, target, e.st);
    }
  }
  const timespec times[2] = {{0, UTIME_OMIT}, {kEtcCopyMark, 0}};
  if (result.ok() && ::utimensat(AT_FDCWD, tmp.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    result = Status::Sys("utimensat", tmp, errno);
  }
  if (result.ok()) {
    // A damaged copy under the same name (see kEtcCopyMark) is moved out of the way first.
    struct stat st {};
    if (::lstat(copy.c_str(), &st) == 0) {
      std::string trash = cache_dir + "/etc-trash-XXXXXX";
      if (::mkdtemp(trash.data())) ::rename(copy.c_str(), (trash + "/copy").c_str());
    }
    if (::rename(tmp.c_str(), copy.c_str()) != 0 && errno != EEXIST && errno != ENOTEMPTY) {
      result = Status::Sys("rename", tmp + " -> " + copy, errno);
    }
  }
  fs::remove_all(tmp, ec);  // what is left of it when the rename did not happen
  remove_stale_etc_copies(cache_dir, fs::path(copy).filename().string());
  return result;
}

Status populate_from_host(const RootPlan& plan, const std::string& root) {
  bool placed = false;
  for (const char* d : kHostDirs) {
    if (auto s = place(std::string("/") + d, root + "/" + d, true, placed); !s.ok()) return s;
  }
  std::vector<EtcEntry> entries;
  for (const char* name : kHostEtc) {
    EtcEntry e{name, {}};
    if (::lstat(("/etc/" + e.name).c_str(), &e.st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      return Status::Sys("lstat", "/etc/" + e.name, errno);
    }
    if (S_ISREG(e.st.st_mode) || S_ISDIR(e.st.st_mode) || S_ISLNK(e.st.st_mode)) {
      entries.push_back(std::move(e));
    }
  }
  const std::string copy = plan.cache_dir + "/" + etc_copy_name(entries);
  struct stat st {};
  if (::lstat(copy.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
      st.st_mtim.tv_sec != kEtcCopyMark || st.st_mtim.tv_nsec != 0) {
    if (auto s = build_etc_copy(entries, plan.cache_dir, copy); !s.ok()) return s;
  }
  if (auto s = make_dir(root + "/etc"); !s.ok()) return s;
  if (auto s = bind(copy, root + "/etc", true); !s.ok()) return s;
  for (const auto& e : entries) {
    if (!e.bound()) continue;
    if (auto s = bind("/etc/" + e.name, root + "/etc/" + e.name, true); !s.ok()) return s;
  }
  return Status::Ok();
}

Status populate_dev(const std::string& dev) {
  if (auto s = make_dir(dev); !s.ok()) return s;
  if (auto s = do_mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k",
                        "tmpfs");
      !s.ok()) {
    return s;
  }
  for (const char* d : kDevices) {
    const std::string target = dev + "/" + d;
    if (auto s = make_file(target); !s.ok()) return s;
    if (auto s = do_mount((std::string("/dev/") + d).c_str(), target, nullptr, MS_BIND, nullptr,
                          std::string("bind /dev/") + d);
        !s.ok()) {
      return s;
    }
  }
  const std::pair<const char*, const char*> links[] = {
      {"fd", "/proc/self/fd"},
      {"stdin", "/proc/self/fd/0"},
      {"stdout", "/proc/self/fd/1"},
      {"stderr", "/proc/self/fd/2"},
  };
  for (const auto& [name, to] : links) {
    if (::symlink(to, (dev + "/" + name).c_str()) != 0) {
      return Status::Sys("symlink", dev + "/" + name, errno);
    }
  }
  if (auto s = make_dir(dev + "/shm", 01777); !s.ok()) return s;
  if (auto s = do_mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                        "mode=1777,size=64m", "tmpfs");
      !s.ok()) {
    return s;
  }
  if (auto s = mount_mqueue(dev + "/mqueue"); !s.ok()) return s;
  // Nothing may be created in /dev itself.
  return do_mount(nullptr, dev, nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
                  "mode=0755,size=64k", "remount ro");
}

// The system CA bundles of the distributions images come from (Debian/Ubuntu/Alpine,
// RHEL/Fedora, SUSE, and the OpenSSL default that Alpine links to the first).
constexpr const char* kSystemCaBundles[] = {"etc/ssl/certs/ca-certificates.crt",
                                            "etc/pki/tls/certs/ca-bundle.crt",
                                            "etc/ssl/ca-bundle.pem", "etc/ssl/cert.pem"};
constexpr size_t kMaxCaBundle = 4 * 1024 * 1024;

// Opens `path` below `root_fd` as if `root_fd` were "/": a symlink in an image cannot lead to
// a file of the host.
int open_in_root(int root_fd, const char* path, uint64_t flags) {
  struct open_how how {};
  how.flags = flags | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, root_fd, path, &how, sizeof how));
}

Status write_new_file(const std::string& path, std::string_view data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Sys("open", path + ", O_CREAT", errno);
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      return Status::Sys("write", path, e);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  ::close(fd);
  return Status::Ok();
}

// Makes the root trust `pem`: the CA alone at kSandboxCaFile, the root's first system bundle
// with it appended at kSandboxCaBundle, and every system bundle the root has covered by such a
// copy (bound over it through its descriptor, so no path is resolved twice). The copies live
// in the root's tmpfs, which becomes read-only with it.
Status install_ca(const std::string& root, const std::string& pem) {
  if (auto s = make_dir(root + "/run"); !s.ok()) return s;
  if (auto s = make_dir(root + "/run/airlock"); !s.ok()) return s;
  if (auto s = write_new_file(root + kSandboxCaFile, pem); !s.ok()) return s;
  const int root_fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return Status::Sys("open", root + ", O_PATH", errno);
  // Every bundle first (one file reached by two paths counts once), then the copies: a copy
  // bound over one path must not be taken for another bundle.
  std::vector<std::pair<size_t, int>> bundles;  // (index in kSystemCaBundles, descriptor)
  std::vector<std::pair<dev_t, ino_t>> seen;
  for (size_t i = 0; i < std::size(kSystemCaBundles); ++i) {
    const int fd = open_in_root(root_fd, kSystemCaBundles[i], O_RDONLY);
    if (fd < 0) continue;  // this distribution keeps it elsewhere
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > off_t(kMaxCaBundle) ||
        std::find(seen.begin(), seen.end(), std::make_pair(st.st_dev, st.st_ino)) != seen.end()) {
      ::close(fd);
      continue;
    }
    seen.emplace_back(st.st_dev, st.st_ino);
    bundles.emplace_back(i, fd);
  }
  std::string first_bundle;
  Status result;
  for (const auto& [i, fd] : bundles) {
    if (!result.ok()) break;
    std::string bundle;
    char buf[64 * 1024];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 || bundle.size() + size_t(n) > kMaxCaBundle) break;
      bundle.append(buf, static_cast<size_t>(n));
    }
    if (!bundle.empty() && bundle.back() != '\n') bundle += '\n';
    bundle += pem;
    const std::string copy = root + "/run/airlock/system-bundle-" + std::to_string(i) + ".pem";
    result = write_new_file(copy, bundle);
    if (result.ok()) {
      const std::string target = "/proc/self/fd/" + std::to_string(fd);
      result = do_mount(copy.c_str(), target, nullptr, MS_BIND, nullptr,
                        std::string("bind ") + copy + " over /" + kSystemCaBundles[i]);
    }
    if (first_bundle.empty()) first_bundle = std::move(bundle);
  }
  for (const auto& [i, fd] : bundles) ::close(fd);
  ::close(root_fd);
  if (!result.ok()) return result;
  return write_new_file(root + kSandboxCaBundle, first_bundle.empty() ? pem : first_bundle);
}

}  // namespace

size_t remove_stale_etc_copies(const std::string& cache_dir, const std::string& current,
                               time_t min_age) {
  namespace fs = std::filesystem;
  std::error_code ec;
  size_t removed = 0;
  const time_t now = ::time(nullptr);
  for (const auto& d : fs::directory_iterator(cache_dir, ec)) {
    const std::string name = d.path().filename().string();
    if (name.rfind("etc-", 0) != 0) continue;
    const bool abandoned = name.rfind("etc-tmp-", 0) == 0 || name.rfind("etc-trash-", 0) == 0;
    if (!abandoned && (current.empty() || name == current)) continue;
    struct stat st {};
    if (::lstat(d.path().c_str(), &st) != 0) continue;
    // An abandoned build counts from when it was last written; a copy from when it was put in
    // place (a run that read the old key a moment ago may still be binding it). A build that
    // has marked itself finished carries kEtcCopyMark as its modification time, decades back,
    // until it is renamed into place: it counts from that change (taken for abandoned, it was
    // removed under the run that was building it).
    const bool marked = st.st_mtim.tv_sec == kEtcCopyMark && st.st_mtim.tv_nsec == 0;
    const time_t since = abandoned && !marked ? st.st_mtim.tv_sec : st.st_ctim.tv_sec;
    if (now - since < min_age) continue;
    if (fs::remove_all(d.path(), ec) > 0 && !ec) ++removed;
  }
  return removed;
}

Status build_root(const RootPlan& plan) {
  // Nothing mounted from here on reaches the host's namespace, and nothing the host mounts
  // later appears here.
  if (auto s = do_mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr, "make-rprivate");
      !s.ok()) {
    return s;
  }
  const std::string& root = plan.staging;
  if (auto s = do_mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=8m",
                        "tmpfs (new root)");
      !s.ok()) {
    return s;
  }
  if (auto s = plan.host ? populate_from_host(plan, root) : populate_from_image(plan.image_dir, root);
      !s.ok()) {
    return s;
  }
  const std::string ws = root + "/workspace";
  if (auto s = make_dir(ws); !s.ok()) return s;
  if (!plan.workspace.empty()) {
    if (auto s = bind(plan.workspace, ws, false); !s.ok()) return s;
  } else {
    const std::string ws_opts = "mode=0755,size=" + std::to_string(plan.workspace_size);
    if (auto s = do_mount("tmpfs", ws, "tmpfs", MS_NOSUID | MS_NODEV, ws_opts.c_str(), "tmpfs");
        !s.ok()) {
      return s;
    }
  }
  if (!plan.toolbox.empty()) {
    const std::string target = root + "/.airlock-toolbox";
    if (auto s = make_file(target); !s.ok()) return s;
    if (auto s = bind(plan.toolbox, target, true); !s.ok()) return s;
  }
  if (!plan.extra_ca_pem.empty()) {
    if (auto s = install_ca(root, plan.extra_ca_pem); !s.ok()) return s;
  }
  const std::string tmp = root + "/tmp";
  if (auto s = make_dir(tmp, 01777); !s.ok()) return s;
  const std::string tmp_opts = "mode=1777,size=" + std::to_string(plan.tmp_size);
  if (auto s = do_mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, tmp_opts.c_str(), "tmpfs");
      !s.ok()) {
    return s;
  }
  const std::string proc = root + "/proc";
  if (auto s = make_dir(proc); !s.ok()) return s;
  if (auto s = do_mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr, "proc");
      !s.ok()) {
    return s;
  }
  if (auto s = populate_dev(root + "/dev"); !s.ok()) return s;
  // The root itself becomes read-only; only /workspace, /tmp and /dev/shm stay writable.
  if (auto s = do_mount(nullptr, root, nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
                        "mode=0755,size=8m", "remount ro (new root)");
      !s.ok()) {
    return s;
  }
  if (::chdir(root.c_str()) != 0) return Status::Sys("chdir", root, errno);
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return Status::Sys("pivot_root", ". , .", errno);
  if (::umount2(".", MNT_DETACH) != 0) return Status::Sys("umount2", "old root, MNT_DETACH", errno);
  if (::chdir("/") != 0) return Status::Sys("chdir", "/", errno);
  return Status::Ok();
}

}  // namespace airlock::sandbox
