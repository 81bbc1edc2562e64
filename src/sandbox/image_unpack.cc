#include "sandbox/image_unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "sandbox/image_files.h"

namespace airlock::sandbox {
namespace fs = std::filesystem;
namespace json = boost::json;
using namespace image_files;
namespace {

// The hex digest of a file ("" with `error` when it cannot be read).
std::string sha256_file(const fs::path& p, std::string& error) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    error = "cannot read " + p.string() + ": " + std::strerror(errno);
    return {};
  }
  Sha256 hash;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    hash.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return hash.digest().substr(7);
}

// A path inside an archive, made relative and checked: no absolute paths, no "..".
std::optional<std::string> clean_entry_path(const char* raw, std::string& error) {
  if (!raw) return std::string();
  std::string p = raw;
  while (p.rfind("./", 0) == 0) p.erase(0, 2);
  if (p == ".") return std::string();
  if (!p.empty() && p.front() == '/') {
    error = "entry '" + p + "' is an absolute path";
    return std::nullopt;
  }
  for (const auto& part : fs::path(p)) {
    if (part == "..") {
      error = "entry '" + p + "' leaves the image root";
      return std::nullopt;
    }
  }
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}

// Whether every directory on the way from `root` to `rel` (the last component excluded) is a
// real directory, so that acting on root/rel cannot be redirected out of the root.
bool no_symlink_on_the_way(const fs::path& root, const fs::path& rel) {
  fs::path at = root;
  const fs::path parent = rel.parent_path();
  for (const auto& part : parent) {
    at /= part;
    std::error_code ec;
    const auto st = fs::symlink_status(at, ec);
    if (ec) return true;  // does not exist: nothing to redirect through
    if (fs::is_symlink(st) || !fs::is_directory(st)) return false;
  }
  return true;
}

struct Archive {
  archive* a = archive_read_new();
  ~Archive() { archive_read_free(a); }
};

std::string open_archive(Archive& ar, const std::string& file) {
  archive_read_support_filter_all(ar.a);
  archive_read_support_format_tar(ar.a);
  if (archive_read_open_filename(ar.a, file.c_str(), 1 << 16) != ARCHIVE_OK) {
    return file + ": " + archive_error_string(ar.a);
  }
  return {};
}

// Extracts a plain tar (the outer tarball) into `dest` with the same safety rules.
std::string extract_all(const std::string& file, const fs::path& dest) {
  return apply_layer(file, dest.string());
}

struct Layer {
  std::string file;
  std::string digest;  // "sha256:…" to verify, or empty (docker-save layer paths)
};

// The layers of an OCI layout directory, and the image's digest (its manifest's).
std::optional<std::vector<Layer>> oci_layers(const fs::path& dir, std::string& digest,
                                             std::string& error) {
  auto blob = [&](const std::string& d) { return dir / "blobs" / "sha256" / d.substr(7); };
  auto index = read_json(dir / "index.json", error);
  if (!index) return std::nullopt;
  const json::value* desc = nullptr;
  for (int depth = 0; depth < 4; ++depth) {
    const auto* manifests = index->is_object() ? index->as_object().if_contains("manifests") : nullptr;
    if (!manifests || !manifests->is_array() || manifests->as_array().empty()) {
      error = "index.json lists no manifests";
      return std::nullopt;
    }
    desc = nullptr;
    for (const auto& m : manifests->as_array()) {
      const auto* plat = m.is_object() ? m.as_object().if_contains("platform") : nullptr;
      if (plat && plat->is_object()) {
        const auto* os = plat->as_object().if_contains("os");
        const auto* arch = plat->as_object().if_contains("architecture");
        if ((os && *os != "linux") || (arch && *arch != "amd64")) continue;
      }
      desc = &m;
      break;
    }
    if (!desc || !desc->is_object() || !desc->as_object().if_contains("digest")) {
      error = "index.json has no manifest for linux/amd64";
      return std::nullopt;
    }
    digest = std::string(desc->as_object().at("digest").as_string());
    if (!is_sha256_digest(digest)) {
      error = "manifest digest '" + digest + "' is not sha256:<64 hex>";
      return std::nullopt;
    }
    std::string actual = sha256_file(blob(digest), error);
    if (actual.empty()) return std::nullopt;
    if ("sha256:" + actual != digest) {
      error = "blob " + digest + " does not match its digest (sha256:" + actual + ")";
      return std::nullopt;
    }
    auto m = read_json(blob(digest), error);
    if (!m) return std::nullopt;
    if (m->is_object() && m->as_object().if_contains("manifests")) {  // a nested index
      index = std::move(m);
      continue;
    }
    const auto* layers = m->is_object() ? m->as_object().if_contains("layers") : nullptr;
    if (!layers || !layers->is_array()) {
      error = "manifest " + digest + " has no layers";
      return std::nullopt;
    }
    std::vector<Layer> out;
    for (const auto& l : layers->as_array()) {
      const auto* d = l.is_object() ? l.as_object().if_contains("digest") : nullptr;
      if (!d || !d->is_string() || !is_sha256_digest(std::string(d->as_string()))) {
        error = "manifest " + digest + " has a layer without a sha256 digest";
        return std::nullopt;
      }
      out.push_back({blob(std::string(d->as_string())).string(), std::string(d->as_string())});
    }
    return out;
  }
  error = "index.json nests indexes too deeply";
  return std::nullopt;
}

// The layers of a `docker save` directory (manifest.json), and an id from its config.
std::optional<std::vector<Layer>> docker_layers(const fs::path& dir, std::string& digest,
                                                std::string& error) {
  auto manifest = read_json(dir / "manifest.json", error);
  if (!manifest) return std::nullopt;
  if (!manifest->is_array() || manifest->as_array().size() != 1 ||
      !manifest->as_array()[0].is_object()) {
    error = "manifest.json must describe exactly one image (save one image per file)";
    return std::nullopt;
  }
  const auto& m = manifest->as_array()[0].as_object();
  const auto* config = m.if_contains("Config");
  const auto* layers = m.if_contains("Layers");
  if (!config || !config->is_string() || !layers || !layers->is_array()) {
    error = "manifest.json needs Config and Layers";
    return std::nullopt;
  }
  std::string path_error;
  auto config_path = clean_entry_path(std::string(config->as_string()).c_str(), path_error);
  if (!config_path) {
    error = "manifest.json Config: " + path_error;
    return std::nullopt;
  }
  const std::string id = sha256_file(dir / *config_path, error);
  if (id.empty()) return std::nullopt;
  digest = "sha256:" + id;
  std::vector<Layer> out;
  for (const auto& l : layers->as_array()) {
    if (!l.is_string()) {
      error = "manifest.json Layers must be paths";
      return std::nullopt;
    }
    auto p = clean_entry_path(std::string(l.as_string()).c_str(), path_error);
    if (!p || p->empty()) {
      error = "manifest.json layer: " + path_error;
      return std::nullopt;
    }
    out.push_back({(dir / *p).string(), ""});
  }
  return out;
}

// Unpacks a layout directory into the store (once per digest); returns the digest.
std::optional<std::string> unpack_layout(const fs::path& dir, const fs::path& store,
                                         std::string& error) {
  std::string digest;
  auto layers = is_oci_layout(dir) ? oci_layers(dir, digest, error) : docker_layers(dir, digest, error);
  if (!layers) return std::nullopt;
  const fs::path final_dir = store / "rootfs" / digest.substr(7);
  if (fs::is_directory(final_dir)) return digest;
  std::error_code ec;
  fs::create_directories(store / "rootfs", ec);
  const fs::path work = store / "rootfs" / (digest.substr(7) + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(work, ec);
  fs::create_directories(work, ec);
  if (ec) {
    error = "cannot create " + work.string() + ": " + ec.message();
    return std::nullopt;
  }
  for (size_t i = 0; i < layers->size(); ++i) {
    const auto& l = (*layers)[i];
    if (!l.digest.empty()) {
      const std::string actual = sha256_file(l.file, error);
      if (actual.empty() || "sha256:" + actual != l.digest) {
        if (!actual.empty()) error = "layer " + l.digest + " does not match its digest";
        fs::remove_all(work, ec);
        return std::nullopt;
      }
    }
    if (std::string e = apply_layer(l.file, work.string()); !e.empty()) {
      error = "layer " + std::to_string(i + 1) + " of " + std::to_string(layers->size()) + ": " + e;
      fs::remove_all(work, ec);
      return std::nullopt;
    }
  }
  fs::rename(work, final_dir, ec);
  if (ec && !fs::is_directory(final_dir)) {  // another import may have won the race
    error = "cannot move the image into " + final_dir.string() + ": " + ec.message();
    fs::remove_all(work, ec);
    return std::nullopt;
  }
  fs::remove_all(work, ec);
  return digest;
}

// An OCI archive or docker-save tarball: extracted aside, then unpacked like a directory.
std::optional<std::string> unpack_tarball(const fs::path& file, const fs::path& store,
                                          std::string& error) {
  std::error_code ec;
  const fs::path tmp = store / ("extract-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (std::string e = extract_all(file.string(), tmp); !e.empty()) {
    error = e.rfind(file.string() + ": ", 0) == 0 ? e : file.string() + ": " + e;
    fs::remove_all(tmp, ec);
    return std::nullopt;
  }
  std::optional<std::string> digest;
  if (is_oci_layout(tmp) || is_docker_save(tmp)) {
    digest = unpack_layout(tmp, store, error);
  } else {
    error = file.string() + " is neither an OCI archive (oci-layout, index.json) nor a "
            "`docker save` tarball (manifest.json)";
  }
  fs::remove_all(tmp, ec);
  return digest;
}

}  // namespace

size_t remove_abandoned_work(const std::string& store_dir, time_t min_age) {
  const fs::path store(store_dir);
  // The process id a leftover names: "<hex>-PID-RAND.partial", "PID-RAND", "<digest>.partial-PID",
  // "extract-PID"; 0 when the name is none of those.
  auto pid_in = [](const std::string& name) -> pid_t {
    std::string digits;
    if (name.size() > 8 && name.ends_with(".partial") && name.front() == '.') {
      const size_t a = name.find('-'), b = name.find('-', a + 1);
      if (a != std::string::npos && b != std::string::npos) digits = name.substr(a + 1, b - a - 1);
    } else if (const size_t p = name.find(".partial-"); p != std::string::npos) {
      digits = name.substr(p + 9);
    } else if (name.starts_with("extract-")) {
      digits = name.substr(8);
    } else if (const size_t dash = name.find('-'); dash != std::string::npos) {
      digits = name.substr(0, dash);
    }
    if (digits.empty() || digits.size() > 9 ||
        digits.find_first_not_of("0123456789") != std::string::npos) {
      return 0;
    }
    return static_cast<pid_t>(std::stol(digits));
  };
  const time_t now = ::time(nullptr);
  size_t removed = 0;
  std::error_code ec;
  auto sweep = [&](const fs::path& dir, bool any_name, auto&& wanted) {
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (!any_name && !wanted(name)) continue;
      const pid_t pid = pid_in(name);
      const bool gone = pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;
      if (!gone) continue;
      struct stat st {};
      if (::lstat(e.path().c_str(), &st) != 0 || now - st.st_mtim.tv_sec < min_age) continue;
      std::error_code rec;
      if (fs::remove_all(e.path(), rec) > 0 && !rec) ++removed;
    }
  };
  sweep(store / "blobs", false, [](const std::string& n) { return n.ends_with(".partial"); });
  sweep(store / "pulls", true, [](const std::string&) { return true; });
  sweep(store / "rootfs", false,
        [](const std::string& n) { return n.find(".partial-") != std::string::npos; });
  sweep(store, false, [](const std::string& n) { return n.starts_with("extract-"); });
  return removed;
}

std::optional<std::string> unpack_image(const std::string& source_path, const std::string& store_dir,
                                        std::string& error) {
  const fs::path source(source_path), store(store_dir);
  if (fs::is_directory(source)) {
    if (is_oci_layout(source) || is_docker_save(source)) return unpack_layout(source, store, error);
    error = source.string() + " is a plain directory, not an image layout: give its path as "
            "`image:` directly";
    return std::nullopt;
  }
  return unpack_tarball(source, store, error);
}

std::string apply_layer(const std::string& layer_file, const std::string& root_dir) {
  const fs::path root = fs::weakly_canonical(root_dir);
  // Pass 1: whiteouts act on what lower layers left.
  {
    Archive ar;
    if (std::string e = open_archive(ar, layer_file); !e.empty()) return e;
    archive_entry* entry = nullptr;
    int rc;
    while ((rc = archive_read_next_header(ar.a, &entry)) == ARCHIVE_OK) {
      std::string error;
      auto path = clean_entry_path(archive_entry_pathname(entry), error);
      if (!path) return error;
      const fs::path rel(*path);
      const std::string base = rel.filename().string();
      if (base.rfind(".wh.", 0) != 0) continue;
      if (!no_symlink_on_the_way(root, rel)) {
        return "whiteout '" + *path + "' goes through a symlink";
      }
      std::error_code ec;
      if (base == ".wh..wh..opq") {
        const fs::path dir = root / rel.parent_path();
        if (fs::is_directory(fs::symlink_status(dir, ec))) {
          for (const auto& child : fs::directory_iterator(dir, ec)) fs::remove_all(child.path(), ec);
        }
      } else {
        fs::remove_all(root / rel.parent_path() / base.substr(4), ec);
      }
    }
    if (rc != ARCHIVE_EOF) return layer_file + ": " + archive_error_string(ar.a);
  }
  // Pass 2: the entries, extracted relative to the root (so that libarchive's checks against
  // absolute paths, ".." and symlinks on the way apply to the whole path inside it).
  Archive ar;
  if (std::string e = open_archive(ar, layer_file); !e.empty()) return e;
  const int cwd = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cwd < 0 || ::chdir(root.c_str()) != 0) {
    if (cwd >= 0) ::close(cwd);
    return "chdir " + root.string() + ": " + std::strerror(errno);
  }
  archive* out = archive_write_disk_new();
  int flags = ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
              ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_PERM |
              ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_UNLINK;
  if (::geteuid() == 0) flags |= ARCHIVE_EXTRACT_OWNER;
  archive_write_disk_set_options(out, flags);
  std::string error;
  archive_entry* entry = nullptr;
  int rc;
  while ((rc = archive_read_next_header(ar.a, &entry)) == ARCHIVE_OK) {
    auto path = clean_entry_path(archive_entry_pathname(entry), error);
    if (!path) break;
    if (path->empty()) continue;
    const std::string base = fs::path(*path).filename().string();
    if (base.rfind(".wh.", 0) == 0) continue;
    const auto type = archive_entry_filetype(entry);
    if (type == AE_IFCHR || type == AE_IFBLK) continue;  // no device nodes in an image root
    archive_entry_set_pathname(entry, path->c_str());
    if (const char* link = archive_entry_hardlink(entry)) {
      auto target = clean_entry_path(link, error);
      if (!target) break;
      archive_entry_set_hardlink(entry, target->c_str());
    }
    if (archive_write_header(out, entry) != ARCHIVE_OK) {
      error = "entry '" + *path + "': " + archive_error_string(out);
      break;
    }
    const void* buf;
    size_t size;
    la_int64_t offset;
    int r;
    while ((r = archive_read_data_block(ar.a, &buf, &size, &offset)) == ARCHIVE_OK) {
      if (archive_write_data_block(out, buf, size, offset) != ARCHIVE_OK) {
        error = "entry '" + *path + "': " + archive_error_string(out);
        break;
      }
    }
    if (!error.empty()) break;
    if (r != ARCHIVE_EOF) {
      error = "entry '" + *path + "': " + archive_error_string(ar.a);
      break;
    }
    if (archive_write_finish_entry(out) != ARCHIVE_OK) {
      error = "entry '" + *path + "': " + archive_error_string(out);
      break;
    }
  }
  if (error.empty() && rc != ARCHIVE_EOF && rc != ARCHIVE_OK) {
    error = layer_file + ": " + archive_error_string(ar.a);
  }
  if (error.empty() && archive_write_close(out) != ARCHIVE_OK) error = archive_error_string(out);
  archive_write_free(out);
  if (::fchdir(cwd) != 0 && error.empty()) error = std::string("fchdir: ") + std::strerror(errno);
  ::close(cwd);
  return error;
}

struct Sha256::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
};

Sha256::Sha256() : ctx_(new Ctx) { EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr); }

Sha256::~Sha256() {
  EVP_MD_CTX_free(ctx_->md);
  delete ctx_;
}

void Sha256::update(const void* data, size_t size) { EVP_DigestUpdate(ctx_->md, data, size); }

std::string Sha256::digest() {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, md, &len);
  static const char* kHex = "0123456789abcdef";
  std::string hex = "sha256:";
  for (unsigned i = 0; i < len; ++i) hex += kHex[md[i] >> 4], hex += kHex[md[i] & 15];
  return hex;
}

std::string extract_skill(const std::string& archive_file, const std::string& dest,
                          size_t max_bytes, size_t max_entries) {
  std::error_code ec;
  if (!fs::create_directory(dest, ec) || ec) {
    return "cannot create " + dest + ": " + (ec ? ec.message() : "it exists");
  }
  auto fail = [&](std::string why) {
    fs::remove_all(dest, ec);
    return why;
  };
  Archive ar;
  archive_read_support_filter_all(ar.a);
  archive_read_support_format_tar(ar.a);
  archive_read_support_format_zip(ar.a);
  if (archive_read_open_filename(ar.a, archive_file.c_str(), 1 << 16) != ARCHIVE_OK) {
    return fail(std::string("not a zip or tar archive: ") + archive_error_string(ar.a));
  }
  size_t entries = 0, bytes = 0;
  archive_entry* entry = nullptr;
  int rc;
  std::string error;
  while ((rc = archive_read_next_header(ar.a, &entry)) == ARCHIVE_OK) {
    if (++entries > max_entries) {
      return fail("more than " + std::to_string(max_entries) + " entries");
    }
    auto path = clean_entry_path(archive_entry_pathname(entry), error);
    if (!path) return fail(error);
    if (path->empty()) continue;
    const auto type = archive_entry_filetype(entry);
    // Links, devices and FIFOs are left out (never made), as the reference workers do.
    if (archive_entry_hardlink(entry) || (type != AE_IFREG && type != AE_IFDIR)) continue;
    // Every directory on the way is made here (0755), so none can be a symlink.
    const fs::path target = fs::path(dest) / *path;
    fs::create_directories(type == AE_IFDIR ? target : target.parent_path(), ec);
    if (ec) return fail("entry '" + *path + "': " + ec.message());
    if (type == AE_IFDIR) continue;
    const mode_t mode = (archive_entry_perm(entry) & 0111) ? 0755 : 0644;
    const int fd =
        ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) return fail("entry '" + *path + "': " + std::strerror(errno));
    char buf[1 << 16];
    for (;;) {
      const la_ssize_t n = archive_read_data(ar.a, buf, sizeof buf);
      if (n < 0) {
        ::close(fd);
        return fail("entry '" + *path + "': " + archive_error_string(ar.a));
      }
      if (n == 0) break;
      bytes += static_cast<size_t>(n);
      if (bytes > max_bytes) {
        ::close(fd);
        return fail("more than " + std::to_string(max_bytes) + " bytes of files");
      }
      for (la_ssize_t done = 0; done < n;) {
        const ssize_t w = ::write(fd, buf + done, static_cast<size_t>(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          const std::string why = std::strerror(errno);
          ::close(fd);
          return fail("entry '" + *path + "': " + why);
        }
        done += w;
      }
    }
    ::fchmod(fd, mode);  // whatever the umask took away
    ::close(fd);
  }
  if (rc != ARCHIVE_EOF)
    return fail(std::string("the archive is damaged: ") + archive_error_string(ar.a));
  return {};
}

}  // namespace airlock::sandbox
