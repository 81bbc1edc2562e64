#include "sandbox/image_pull.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/encoding.h"
#include "common/tls.h"
#include "sandbox/image_unpack.h"

namespace airlock::sandbox {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;

constexpr auto kIoTimeout = std::chrono::seconds(60);
constexpr size_t kManifestLimit = 4 * 1024 * 1024;
constexpr int kRedirectLimit = 5;
// Blobs fetched at once (each on a connection of its own).
constexpr size_t kParallelBlobs = 4;
const char* const kManifestAccept =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

struct PullError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Url {
  bool tls = true;
  std::string host;  // without brackets or port
  std::string port;
  std::string target;  // path and query
  std::string authority() const { return host + ":" + port; }
};

Url parse_url(const std::string& text) {
  auto u = boost::urls::parse_uri(text);
  if (!u || (u->scheme() != "https" && u->scheme() != "http") || u->host().empty()) {
    throw PullError("'" + text.substr(0, 200) + "' is not an http(s) URL");
  }
  Url out;
  out.tls = u->scheme() == "https";
  out.host = u->host_address();
  out.port = u->has_port() ? std::string(u->port()) : (out.tls ? "443" : "80");
  out.target = std::string(u->encoded_target());
  if (out.target.empty()) out.target = "/";
  return out;
}

// What a registry answered: the status, the headers a pull needs, and the body (small
// answers) — or, with a sink, the body written to a file while it is hashed.
struct Answer {
  unsigned status = 0;
  std::string content_type, www_authenticate, location, docker_digest;
  std::string body;
  uint64_t written = 0;
  std::string sha256;  // of the body as written to the sink
};

class Client {
 public:
  Client(const std::vector<RegistrySettings>& settings, const std::string& docker_config)
      : settings_(settings), docker_config_(docker_config) {}

  // GET `url`, following redirects (Authorization only to the first host), body to `sink`
  // (an open file descriptor) or to answer.body (at most kManifestLimit).
  Answer get(Url url, const std::string& accept, const std::string& authorization, int sink) {
    const std::string first_host = url.authority();
    for (int hop = 0;; ++hop) {
      const bool same_host = url.authority() == first_host;
      Answer a = once(url, accept, same_host ? authorization : std::string(), sink);
      if (a.status < 300 || a.status >= 400 || a.status == 304 || a.location.empty()) return a;
      if (hop == kRedirectLimit) throw PullError("more than 5 redirects from " + first_host);
      Url next = a.location.rfind("/", 0) == 0 ? Url{url.tls, url.host, url.port, a.location}
                                                : parse_url(a.location);
      if (url.tls && !next.tls) throw PullError("a redirect from HTTPS to plain HTTP (" + a.location.substr(0, 200) + ") was refused");
      url = next;
    }
  }

  const RegistrySettings* settings_for(const std::string& host) const {
    for (const auto& s : settings_) {
      if (s.host == host) return &s;
    }
    return nullptr;
  }

  std::optional<RegistryCredentials> credentials(const std::string& host) const {
    if (docker_config_.empty()) return std::nullopt;
    return credentials_for(docker_config_, host);
  }

 private:
  Answer once(const Url& url, const std::string& accept, const std::string& authorization, int sink) {
    asio::io_context io;
    tcp::resolver resolver(io);
    boost::system::error_code ec;
    const auto endpoints = resolver.resolve(url.host, url.port, ec);
    if (ec) throw PullError("cannot resolve " + url.host + ": " + ec.message());
    http::request<http::empty_body> req{http::verb::get, url.target, 11};
    req.set(http::field::host, url.port == (url.tls ? "443" : "80") ? url.host : url.authority());
    req.set(http::field::user_agent, std::string("sandbox-agent/") + AIRLOCK_VERSION);
    if (!accept.empty()) req.set(http::field::accept, accept);
    if (!authorization.empty()) req.set(http::field::authorization, authorization);
    if (!url.tls) {
      beast::tcp_stream stream(io);
      stream.expires_after(kIoTimeout);
      stream.connect(endpoints, ec);
      if (ec) throw PullError("cannot connect to " + url.authority() + ": " + ec.message());
      return exchange(stream, req, sink, url);
    }
    tls::ClientOptions topts;
    // A CA of the registry's settings (by the name as the reference or mirror gives it).
    for (const auto& s : settings_) {
      if ((s.host == url.authority() || s.host == url.host) && !s.ca_file.empty()) topts.ca_file = s.ca_file;
    }
    auto ctx = tls::make_client_context(topts);
    beast::ssl_stream<beast::tcp_stream> stream(io, *ctx);
    tls::prepare_client(stream.native_handle(), url.host, topts);
    beast::get_lowest_layer(stream).expires_after(kIoTimeout);
    beast::get_lowest_layer(stream).connect(endpoints, ec);
    if (ec) throw PullError("cannot connect to " + url.authority() + ": " + ec.message());
    stream.handshake(asio::ssl::stream_base::client, ec);
    if (ec) {
      throw PullError("TLS with " + url.authority() + " failed: " +
                      tls::describe_handshake_failure(stream.native_handle(), ec, url.host, topts));
    }
    return exchange(stream, req, sink, url);
  }

  template <class Stream>
  Answer exchange(Stream& stream, http::request<http::empty_body>& req, int sink, const Url& url) {
    boost::system::error_code ec;
    auto& lowest = beast::get_lowest_layer(stream);
    lowest.expires_after(kIoTimeout);
    http::write(stream, req, ec);
    if (ec) throw PullError("sending to " + url.authority() + " failed: " + ec.message());
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    lowest.expires_after(kIoTimeout);
    http::read_header(stream, buffer, parser, ec);
    if (ec) throw PullError("no answer from " + url.authority() + ": " + ec.message());
    Answer a;
    const auto& h = parser.get();
    a.status = h.result_int();
    a.content_type = std::string(h[http::field::content_type]);
    a.www_authenticate = std::string(h[http::field::www_authenticate]);
    a.location = std::string(h[http::field::location]);
    a.docker_digest = std::string(h["Docker-Content-Digest"]);
    const bool to_sink = sink >= 0 && a.status == 200;
    Sha256 hash;
    char chunk[64 * 1024];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      lowest.expires_after(kIoTimeout);
      http::read(stream, buffer, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        throw PullError("the answer from " + url.authority() + " broke off after " +
                        std::to_string(a.written + a.body.size()) + " bytes: " + ec.message());
      }
      const size_t n = sizeof chunk - parser.get().body().size;
      if (to_sink) {
        hash.update(chunk, n);
        for (size_t off = 0; off < n;) {
          const ssize_t w = ::write(sink, chunk + off, n - off);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) throw PullError(std::string("writing a blob failed: ") + std::strerror(errno));
          off += static_cast<size_t>(w);
        }
        a.written += n;
      } else {
        if (a.body.size() + n > kManifestLimit) {
          throw PullError("an answer from " + url.authority() + " is larger than 4 MiB where a "
                          "manifest or an error was expected");
        }
        a.body.append(chunk, n);
      }
    }
    if (to_sink) a.sha256 = hash.digest();
    return a;
  }

  const std::vector<RegistrySettings>& settings_;
  const std::string& docker_config_;
};

std::string registry_error_text(const Answer& a) {
  // {"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}
  boost::system::error_code ec;
  const json::value v = json::parse(a.body, ec);
  if (!ec && v.is_object()) {
    if (const auto* errs = v.as_object().if_contains("errors"); errs && errs->is_array() && !errs->as_array().empty()) {
      const auto& e = errs->as_array()[0];
      if (e.is_object()) {
        std::string out;
        if (const auto* c = e.as_object().if_contains("code"); c && c->is_string()) out = std::string(c->as_string());
        if (const auto* m = e.as_object().if_contains("message"); m && m->is_string()) out += (out.empty() ? "" : ": ") + std::string(m->as_string());
        return out.substr(0, 300);
      }
    }
  }
  return "";
}

class Puller {
 public:
  Puller(const PullRequest& r, const ImageReference& ref)
      : request_(r), ref_(ref), client_(r.registries, r.docker_config) {
    host_ = ref.registry;
    if (const auto* s = client_.settings_for(ref.registry); s && !s->mirror.empty()) host_ = s->mirror;
    const auto* s = client_.settings_for(host_);
    if (!s && host_ != ref.registry) s = client_.settings_for(ref.registry);
    plain_ = s && s->plain_http;
    if (plain_) {
      if (std::string why = plain_http_refusal(host_); !why.empty()) throw PullError(why);
    }
    blobs_ = fs::path(r.store) / "blobs" / "sha256";
    fs::create_directories(blobs_);
  }

  std::string pull() {
    auto [top, top_type, top_digest] = manifest(ref_.manifest_ref());
    if (!ref_.digest.empty() && top_digest != ref_.digest) {
      throw PullError("the registry answered a manifest with digest " + top_digest + " for " + ref_.digest);
    }
    std::string digest = top_digest, media = top_type, text = top;
    boost::system::error_code ec;
    json::value doc = json::parse(text, ec);
    if (ec) throw PullError("the manifest is not JSON: " + ec.message());
    if (is_index(doc, top_type)) {
      std::string error;
      auto d = select_platform(doc, request_.platform, error);
      if (!d) throw PullError(error);
      auto [m, m_type, m_digest] = manifest(d->digest);
      if (m_digest != d->digest) throw PullError("manifest " + d->digest + " does not match its digest (" + m_digest + ")");
      digest = m_digest;
      media = d->media_type.empty() ? m_type : d->media_type;
      text = m;
      doc = json::parse(text, ec);
      if (ec) throw PullError("manifest " + digest + " is not JSON: " + ec.message());
    }
    std::string error;
    auto image = parse_image_manifest(doc, error);
    if (!image) throw PullError("manifest " + digest + ": " + error);
    store_bytes(digest, text);
    fetch_blobs(*image);
    return unpack(digest, media.empty() ? kOciManifest : media, text.size(), *image);
  }

 private:
  std::string base() const { return std::string(plain_ ? "http://" : "https://") + host_; }

  // The config and the layers not stored yet, kParallelBlobs at a time. The first failure is
  // the pull's; blobs that were verified stay stored (a later pull uses them).
  void fetch_blobs(const ImageManifest& image) {
    std::vector<Descriptor> todo;
    std::set<std::string> seen;
    for (const auto& d : {image.config}) todo.push_back(d), seen.insert(d.digest);
    for (const auto& l : image.layers) {
      if (seen.insert(l.digest).second) todo.push_back(l);
    }
    std::mutex mu;
    size_t next = 0;
    std::string first_error;
    auto worker = [&] {
      for (;;) {
        size_t i;
        {
          std::lock_guard lock(mu);
          if (next == todo.size() || !first_error.empty()) return;
          i = next++;
        }
        try {
          blob(todo[i]);
        } catch (const std::exception& e) {
          std::lock_guard lock(mu);
          if (first_error.empty()) first_error = e.what();
        }
      }
    };
    std::vector<std::thread> threads;
    for (size_t t = 0; t < std::min(kParallelBlobs, todo.size()); ++t) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
    if (!first_error.empty()) throw PullError(first_error);
  }

  // GET with the registry's authentication: anonymous first; on 401 the challenge's scheme.
  // Safe from several threads (the blob fetches).
  Answer get(const std::string& path, const std::string& accept, int sink) {
    const Url url = parse_url(base() + path);
    std::string authorization = current_authorization();
    Answer a = client_.get(url, accept, authorization, sink);
    if (a.status != 401) return a;
    {
      std::lock_guard lock(auth_mu_);
      if (auth_tried_) return a;
      auth_tried_ = true;
      authenticate(a.www_authenticate);
      authorization = authorization_;
    }
    if (sink >= 0 && (::ftruncate(sink, 0) != 0 || ::lseek(sink, 0, SEEK_SET) != 0)) {
      throw PullError(std::string("cannot rewind a blob file: ") + std::strerror(errno));
    }
    return client_.get(url, accept, authorization, sink);
  }

  std::string current_authorization() {
    std::lock_guard lock(auth_mu_);
    return authorization_;
  }

  void authenticate(const std::string& header) {
    auto challenge = parse_www_authenticate(header);
    auto creds = client_.credentials(host_);
    if (!creds && host_ != ref_.registry) creds = client_.credentials(ref_.registry);
    if (!challenge) throw PullError(host_ + " asks for authentication without saying how (no WWW-Authenticate)");
    if (challenge->scheme == "basic") {
      if (!creds) throw PullError(host_ + " needs credentials (Basic); give them in image_pull_secret (a .dockerconfigjson secret)");
      authorization_ = "Basic " + base64(creds->username + ":" + creds->password, false, true);
      return;
    }
    if (challenge->scheme != "bearer") throw PullError(host_ + " asks for '" + challenge->scheme + "' authentication, which is not supported (Basic and Bearer are)");
    const std::string realm = challenge->params["realm"];
    if (realm.empty()) throw PullError(host_ + "'s Bearer challenge names no realm (token endpoint)");
    std::string target = realm + (realm.find('?') == std::string::npos ? "?" : "&");
    const std::string scope = challenge->params.count("scope") ? challenge->params["scope"]
                                                              : "repository:" + ref_.repository + ":pull";
    auto enc = [](const std::string& s) {
      std::string out;
      for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out.push_back(static_cast<char>(c));
        else { char b[4]; std::snprintf(b, sizeof b, "%%%02X", c); out += b; }
      }
      return out;
    };
    if (challenge->params.count("service")) target += "service=" + enc(challenge->params["service"]) + "&";
    target += "scope=" + enc(scope);
    Url token_url = parse_url(target);
    if (!token_url.tls) {
      if (std::string why = plain_http_refusal(token_url.authority()); !why.empty()) {
        throw PullError("the token endpoint " + realm.substr(0, 200) + " is plain HTTP and not on loopback");
      }
    }
    const std::string basic = creds ? "Basic " + base64(creds->username + ":" + creds->password, false, true) : "";
    Answer t = client_.get(token_url, "application/json", basic, -1);
    if (t.status == 401 || t.status == 403) {
      throw PullError("the token endpoint of " + host_ + " refused " + (creds ? "the credentials for user '" + creds->username + "'" : std::string("an anonymous pull")) + " (" + std::to_string(t.status) + ")");
    }
    if (t.status != 200) throw PullError("the token endpoint of " + host_ + " answered " + std::to_string(t.status));
    boost::system::error_code ec;
    const json::value v = json::parse(t.body, ec);
    std::string token;
    if (!ec && v.is_object()) {
      for (const char* k : {"token", "access_token"}) {
        if (const auto* x = v.as_object().if_contains(k); x && x->is_string() && !x->as_string().empty()) {
          token = std::string(x->as_string());
          break;
        }
      }
    }
    if (token.empty()) throw PullError("the token endpoint of " + host_ + " answered no token");
    authorization_ = "Bearer " + token;
  }

  void check_status(const Answer& a, const std::string& what) {
    if (a.status == 200) return;
    const std::string auth = current_authorization();
    std::string detail = registry_error_text(a);
    if (a.status == 401 || a.status == 403) {
      throw PullError(host_ + " refused " + what + " (" + std::to_string(a.status) + (detail.empty() ? "" : " " + detail) + "): " +
                      (auth.rfind("Basic", 0) == 0 ? "wrong user name or password in image_pull_secret"
                       : auth.empty() ? "it needs credentials (image_pull_secret)"
                                                : "the credentials do not allow pulling " + ref_.repository));
    }
    if (a.status == 404) {
      throw PullError(what + " was not found in " + host_ + (detail.empty() ? "" : " (" + detail + ")"));
    }
    throw PullError(host_ + " answered " + std::to_string(a.status) + " for " + what + (detail.empty() ? "" : ": " + detail));
  }

  // A manifest (by tag or digest): its text, content type, and computed digest.
  std::tuple<std::string, std::string, std::string> manifest(const std::string& ref) {
    Answer a = get("/v2/" + ref_.repository + "/manifests/" + ref, kManifestAccept, -1);
    check_status(a, ref.rfind("sha256:", 0) == 0 ? "manifest " + ref + " of " + ref_.repository
                                                 : "tag '" + ref + "' of " + ref_.repository);
    Sha256 h;
    h.update(a.body.data(), a.body.size());
    const std::string digest = h.digest();
    if (!a.docker_digest.empty() && a.docker_digest != digest && a.docker_digest.rfind("sha256:", 0) == 0) {
      throw PullError("the manifest of " + ref + " does not match the digest the registry gave (" + a.docker_digest + " vs " + digest + ")");
    }
    std::string type = a.content_type;
    if (const size_t semi = type.find(';'); semi != std::string::npos) type.resize(semi);
    return {std::move(a.body), type, digest};
  }

  fs::path blob_path(const std::string& digest) const { return blobs_ / digest.substr(7); }

  void store_bytes(const std::string& digest, const std::string& bytes) {
    if (fs::exists(blob_path(digest))) return;
    const fs::path tmp = temp_path(digest);
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      if (!out) throw PullError("cannot write " + tmp.string());
    }
    fs::rename(tmp, blob_path(digest));
  }

  fs::path temp_path(const std::string& digest) const {
    std::random_device rd;
    return blobs_.parent_path() / ("." + digest.substr(7, 16) + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()) + ".partial");
  }

  // A blob fetched (unless stored already), verified against its digest and size, then renamed
  // into place.
  void blob(const Descriptor& d) {
    if (fs::exists(blob_path(d.digest))) return;
    const fs::path tmp = temp_path(d.digest);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw PullError("cannot create " + tmp.string() + ": " + std::strerror(errno));
    try {
      Answer a = get("/v2/" + ref_.repository + "/blobs/" + d.digest, "", fd);
      check_status(a, "blob " + d.digest + " of " + ref_.repository);
      if (a.sha256 != d.digest) {
        throw PullError("blob " + d.digest + " does not match its digest: the registry sent " + std::to_string(a.written) +
                        " bytes hashing to " + a.sha256 + " (corrupted in the registry's storage or in transit); nothing was stored");
      }
      if (a.written != d.size) {
        throw PullError("blob " + d.digest + " is " + std::to_string(a.written) + " bytes, its manifest says " + std::to_string(d.size));
      }
      if (::fsync(fd) != 0) throw PullError(std::string("fsync: ") + std::strerror(errno));
      ::close(fd);
      fs::rename(tmp, blob_path(d.digest));
    } catch (...) {
      ::close(fd);
      std::error_code ec;
      fs::remove(tmp, ec);
      throw;
    }
  }

  // An OCI layout of links to the stored blobs, unpacked into the store, then removed.
  std::string unpack(const std::string& digest, const std::string& media, size_t size, const ImageManifest& image) {
    std::random_device rd;
    const fs::path layout = fs::path(request_.store) / "pulls" / (std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(layout / "blobs" / "sha256");
    struct Cleanup {
      fs::path p;
      ~Cleanup() { std::error_code ec; fs::remove_all(p, ec); }
    } cleanup{layout};
    auto link = [&](const std::string& d) {
      std::error_code ec;
      fs::create_hard_link(blob_path(d), layout / "blobs" / "sha256" / d.substr(7), ec);
      if (ec) fs::copy_file(blob_path(d), layout / "blobs" / "sha256" / d.substr(7), fs::copy_options::overwrite_existing);
    };
    link(digest);
    link(image.config.digest);
    for (const auto& l : image.layers) link(l.digest);
    std::ofstream(layout / "oci-layout") << R"({"imageLayoutVersion":"1.0.0"})";
    json::object index{{"schemaVersion", 2},
                       {"manifests", json::array{json::object{{"mediaType", media}, {"digest", digest}, {"size", size}}}}};
    std::ofstream(layout / "index.json") << json::serialize(index);
    std::string error;
    auto unpacked = unpack_image(layout.string(), request_.store, error);
    if (!unpacked) throw PullError(error);
    return *unpacked;
  }

  const PullRequest& request_;
  const ImageReference& ref_;
  Client client_;
  std::string host_;
  bool plain_ = false;
  fs::path blobs_;
  std::mutex auth_mu_;
  std::string authorization_;  // guarded by auth_mu_
  bool auth_tried_ = false;    // guarded by auth_mu_
};

}  // namespace

std::optional<std::string> pull_image(const PullRequest& request, std::string& error) {
  auto ref = parse_image_reference(request.reference, error);
  if (!ref) {
    if (error.empty()) error = "'" + request.reference + "' names no registry (HOST[:PORT]/REPOSITORY[:TAG])";
    error = "pulling " + request.reference + ": " + error;
    return std::nullopt;
  }
  try {
    Puller p(request, *ref);
    return p.pull();
  } catch (const std::exception& e) {
    error = "pulling " + ref->str() + ": " + e.what();
    return std::nullopt;
  }
}

}  // namespace airlock::sandbox
