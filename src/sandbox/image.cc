#include "sandbox/image.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "sandbox/image_files.h"
#include "sandbox/steps.h"

namespace airlock::sandbox {
namespace fs = std::filesystem;
namespace json = boost::json;

namespace image_files {

bool is_sha256_digest(const std::string& d) {
  if (d.size() != 71 || d.rfind("sha256:", 0) != 0) return false;
  for (size_t i = 7; i < d.size(); ++i) {
    if (!std::isxdigit(static_cast<unsigned char>(d[i])) || std::isupper(static_cast<unsigned char>(d[i]))) return false;
  }
  return true;
}

std::optional<json::value> read_json(const fs::path& p, std::string& error) {
  boost::system::error_code ec;
  std::string text;
  if (!read_file(p.string(), text)) {
    error = "cannot read " + p.string() + ": " + std::strerror(errno);
    return std::nullopt;
  }
  auto v = json::parse(text, ec);
  if (ec) {
    error = p.string() + " is not valid JSON: " + ec.message();
    return std::nullopt;
  }
  return v;
}

bool is_oci_layout(const fs::path& dir) {
  return fs::exists(dir / "oci-layout") && fs::exists(dir / "index.json");
}
bool is_docker_save(const fs::path& dir) {
  return fs::exists(dir / "manifest.json") && !is_oci_layout(dir);
}

}  // namespace image_files

namespace {
using namespace image_files;

// --- sandbox-agent-unpack --------------------------------------------------------------------

std::string& unpack_helper_override() {
  static std::string path;
  return path;
}

// The helper sits next to the running executable (sandbox-agent, or a test binary).
std::string unpack_helper_path() {
  if (!unpack_helper_override().empty()) return unpack_helper_override();
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return (ec ? fs::path(kUnpackHelper) : self.parent_path() / kUnpackHelper).string();
}

// Runs `sandbox-agent-unpack SOURCE STORE` (or `--pull REFERENCE STORE` with `input` on its
// stdin; spawn_unpack_helper). Returns the digest it prints, or its error.
std::optional<std::string> run_unpack_helper(const std::vector<std::string>& args,
                                             const std::string& input, std::string& error) {
  int out[2], in[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || (!input.empty() && ::pipe2(in, O_CLOEXEC) != 0)) {
    error = std::string("pipe2: ") + std::strerror(errno);
    return std::nullopt;
  }
  const pid_t pid = spawn_unpack_helper(args, in[0], out[1], error);
  ::close(out[1]);
  if (in[0] >= 0) ::close(in[0]);
  if (pid < 0) {
    ::close(out[0]);
    if (in[1] >= 0) ::close(in[1]);
    return std::nullopt;
  }
  if (in[1] >= 0) {
    // Small (settings and credentials): the pipe holds it; the helper reads it before anything.
    std::string_view rest = input;
    while (!rest.empty()) {
      const ssize_t n = ::write(in[1], rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      rest.remove_prefix(static_cast<size_t>(n));
    }
    ::close(in[1]);
  }
  std::string output;
  read_to_end(out[0], output, 64 * 1024);  // a digest, or an error message
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && is_sha256_digest(output)) return output;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    error = std::string(kUnpackHelper) + " answered '" + output.substr(0, 200) +
            "' instead of an image digest";
  } else if (WIFSIGNALED(status)) {
    error = std::string(kUnpackHelper) + " was killed by signal " +
            std::to_string(WTERMSIG(status)) + (output.empty() ? "" : ": " + output);
  } else {
    error = output.empty() ? std::string(kUnpackHelper) + " failed without saying why" : output;
  }
  return std::nullopt;
}

// Names a source as it is now, so that a run finds the image it unpacked before without
// starting the helper or reading the source again (hashing a 1 GiB tarball on every run costs
// ~0.7 s here even from the page cache). A tarball: its device, inode, size and modification
// time. A layout directory: the same of its index.json (OCI) or manifest.json (docker save),
// which name the image's manifest by digest or list its layers. Changing it changes the name.
std::string source_identity(const fs::path& source, std::string& error) {
  fs::path file = source;
  std::string prefix;
  if (fs::is_directory(source)) {
    file = source / (is_oci_layout(source) ? "index.json" : "manifest.json");
    prefix = "layout-";
  }
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    error = "cannot read " + file.string() + ": " + std::strerror(errno);
    return {};
  }
  return prefix + std::to_string(st.st_dev) + "-" + std::to_string(st.st_ino) + "-" +
         std::to_string(st.st_size) + "-" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

// The digest of an image unpacked before from this very source, or the helper's.
std::optional<std::string> known_or_unpack(const fs::path& source, const fs::path& store,
                                           std::string& error) {
  if (fs::is_directory(source) && !is_oci_layout(source) && !is_docker_save(source)) {
    error = source.string() + " is a plain directory, not an image layout: give its path as "
            "`image:` directly";
    return std::nullopt;
  }
  const std::string identity = source_identity(source, error);
  if (identity.empty()) return std::nullopt;
  const fs::path known = store / "archives" / identity;
  if (fs::exists(known)) {
    std::string digest;
    if (read_file(known.string(), digest) && is_sha256_digest(digest) && fs::is_directory(store / "rootfs" / digest.substr(7))) {
      return digest;
    }
  }
  auto digest = run_unpack_helper({source.string(), store.string()}, "", error);
  if (!digest) return std::nullopt;
  std::error_code ec;
  fs::create_directories(store / "archives", ec);
  const fs::path tmp = known.string() + ".tmp-" + std::to_string(::getpid());
  std::ofstream(tmp) << *digest;
  fs::rename(tmp, known, ec);
  return digest;
}

fs::path refs_file(const fs::path& store) { return store / "refs.json"; }

json::object read_refs(const fs::path& store) {
  std::string ignored;
  auto v = read_json(refs_file(store), ignored);
  if (v && v->is_object()) return v->as_object();
  return {};
}

bool record_ref(const fs::path& store, const std::string& ref, const std::string& digest,
                std::string& error) {
  json::object refs = read_refs(store);
  refs[ref] = digest;
  const fs::path tmp = refs_file(store).string() + ".tmp-" + std::to_string(::getpid());
  std::ofstream(tmp) << json::serialize(refs) << "\n";
  std::error_code ec;
  fs::rename(tmp, refs_file(store), ec);
  if (ec) error = "cannot write " + refs_file(store).string() + ": " + ec.message();
  return !ec;
}

ImageRoot rootfs_of(const fs::path& store, const std::string& digest, const std::string& what) {
  ImageRoot r;
  r.dir = (store / "rootfs" / digest.substr(7)).string();
  r.description = what + " (" + digest.substr(0, 19) + "…)";
  r.digest = digest;
  return r;
}

// The pull settings for the helper's stdin.
std::string pull_input(const ImagePullOptions& pull) {
  return json::serialize(json::object{{"platform", pull.platform},
                                      {"registries", registry_settings_to_json(pull.registries)},
                                      {"docker_config", pull.docker_config}});
}

std::optional<fs::path> open_store(const std::string& store_dir, std::string& error) {
  std::error_code ec;
  fs::create_directories(store_dir, ec);
  if (ec) {
    error = "cannot create the image store " + store_dir + ": " + ec.message();
    return std::nullopt;
  }
  return fs::canonical(store_dir);
}

}  // namespace

void set_unpack_helper(std::string path) { unpack_helper_override() = std::move(path); }

pid_t spawn_unpack_helper(const std::vector<std::string>& args, int in_fd, int out_fd,
                          std::string& error) {
  const std::string helper = unpack_helper_path();
  if (::access(helper.c_str(), X_OK) != 0) {
    error =
        "unpacking needs " + helper + ", installed next to sandbox-agent: " + std::strerror(errno);
    return -1;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (in_fd < 0) {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  } else {
    posix_spawn_file_actions_adddup2(&actions, in_fd, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  std::vector<char*> argv{const_cast<char*>(helper.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  char path_env[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::string parent_env = std::string(kUnpackParentEnv) + "=" + std::to_string(::getpid());
  char* envp[] = {path_env, parent_env.data(), nullptr};
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, helper.c_str(), &actions, nullptr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    error = "cannot start " + helper + ": " + std::strerror(rc);
    return -1;
  }
  return pid;
}

std::string normalize_reference(const std::string& ref) {
  if (ref.empty() || ref.size() > 255 || ref.find("..") != std::string::npos ||
      ref.front() == '/' || ref.front() == '.' || ref.back() == ':' || ref.back() == '/') {
    return {};
  }
  for (char c : ref) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && std::string_view("._-/:@").find(c) == std::string_view::npos) {
      return {};
    }
  }
  const size_t slash = ref.rfind('/');
  const size_t colon = ref.rfind(':');
  if (ref.find('@') == std::string::npos && (colon == std::string::npos || (slash != std::string::npos && colon < slash))) {
    return ref + ":latest";
  }
  return ref;
}

std::optional<std::string> import_image(const std::string& source, const std::string& tag,
                                        const std::string& store_dir, std::string& error) {
  const std::string ref = normalize_reference(tag);
  if (ref.empty()) {
    error = "--tag '" + tag + "' is not an image reference such as my-registry/tool:1.2";
    return std::nullopt;
  }
  if (!fs::exists(source)) {
    error = source + ": " + std::strerror(ENOENT);
    return std::nullopt;
  }
  std::error_code ec;
  fs::create_directories(store_dir, ec);
  if (ec) {
    error = "cannot create the image store " + store_dir + ": " + ec.message();
    return std::nullopt;
  }
  const fs::path store = fs::canonical(store_dir);
  auto digest = known_or_unpack(fs::canonical(source), store, error);
  if (!digest) return std::nullopt;
  if (!record_ref(store, ref, *digest, error)) return std::nullopt;
  return digest;
}

std::optional<std::string> pull_to_store(const std::string& reference, const std::string& store_dir,
                                         const ImagePullOptions& pull, std::string& error) {
  auto ref = parse_image_reference(reference, error);
  if (!ref) {
    if (error.empty()) {
      error = "'" + reference + "' names no registry: write HOST[:PORT]/REPOSITORY[:TAG] (the "
              "first part a host name with a '.' or a port, or localhost)";
    }
    return std::nullopt;
  }
  auto store = open_store(store_dir, error);
  if (!store) return std::nullopt;
  auto digest = run_unpack_helper({"--pull", ref->str(), store->string()}, pull_input(pull), error);
  if (!digest) return std::nullopt;
  // Both names: the tag (for the next resolve) and, for the record, the digest it had.
  if (!record_ref(*store, ref->str(), *digest, error)) return std::nullopt;
  return digest;
}

std::vector<StoredImage> list_images(const std::string& store) {
  std::vector<StoredImage> out;
  for (const auto& [k, v] : read_refs(store)) {
    if (v.is_string()) out.push_back({std::string(k), std::string(v.as_string())});
  }
  return out;
}

std::optional<ImageRoot> resolve_image(const std::string& image, const std::string& store_dir,
                                       const ImagePullOptions& pull, std::string& error) {
  ImageRoot r;
  if (image == "host") {
    r.host = true;
    r.description = "host (system directories, read-only)";
    return r;
  }
  std::error_code ec;
  const auto st = fs::status(image, ec);
  if (!ec && fs::exists(st)) {
    const fs::path path = fs::canonical(image);
    if (fs::is_directory(st) && !is_oci_layout(path) && !is_docker_save(path)) {
      r.dir = path.string();
      r.description = "root filesystem " + r.dir;
      return r;
    }
    fs::create_directories(store_dir, ec);
    if (ec) {
      error = "image '" + image + "' must be unpacked, but the image store " + store_dir +
              " cannot be created: " + ec.message();
      return std::nullopt;
    }
    const fs::path store = fs::canonical(store_dir);
    auto digest = known_or_unpack(path, store, error);
    if (!digest) {
      error = "image '" + image + "': " + error;
      return std::nullopt;
    }
    return rootfs_of(store, *digest, path.string());
  }
  if (auto remote = parse_image_reference(image, error)) {
    const std::string ref = remote->str();
    const fs::path store = fs::exists(store_dir) ? fs::canonical(store_dir) : fs::path(store_dir);
    if (pull.policy != PullPolicy::kAlways) {
      const json::object refs = read_refs(store);
      if (const auto* d = refs.if_contains(ref); d && d->is_string() &&
          fs::is_directory(store / "rootfs" / std::string(d->as_string()).substr(7))) {
        return rootfs_of(store, std::string(d->as_string()), ref);
      }
      if (pull.policy == PullPolicy::kNever) {
        error = "image '" + image + "' is not in the local image store (" + store.string() +
                ") and `pull: never` is set: pull it with `sandbox-agent image pull " + image + "`";
        return std::nullopt;
      }
    }
    auto digest = pull_to_store(image, store_dir, pull, error);
    if (!digest) {
      error = "image '" + image + "': " + error;
      return std::nullopt;
    }
    return rootfs_of(fs::canonical(store_dir), *digest, ref);
  } else if (!error.empty()) {
    error = "image '" + image + "': " + error;
    return std::nullopt;
  }
  const std::string ref = normalize_reference(image);
  if (ref.empty()) {
    error = "image '" + image + "' is not 'host', an existing path, or an image reference";
    return std::nullopt;
  }
  const fs::path store = fs::exists(store_dir) ? fs::canonical(store_dir) : fs::path(store_dir);
  const json::object refs = read_refs(store);
  const auto* digest = refs.if_contains(ref);
  if (!digest || !digest->is_string() ||
      !fs::is_directory(store / "rootfs" / std::string(digest->as_string()).substr(7))) {
    error = "image '" + image + "' is not in the local image store (" + store.string() +
            "); import it with `sandbox-agent image import FILE --tag " + image +
            "` (FILE: an OCI layout directory, an OCI archive or a `docker save` tarball), "
            "or name it with its registry (HOST[:PORT]/REPOSITORY[:TAG]) to pull it";
    return std::nullopt;
  }
  return rootfs_of(store, std::string(digest->as_string()), ref);
}

}  // namespace airlock::sandbox
