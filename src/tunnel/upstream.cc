#include "tunnel/upstream.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <cstring>

#include "common/jsonrpc.h"

extern char** environ;

namespace airlock::tunnel {
namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
using tcp = asio::ip::tcp;

// Writes queued lines in order on any AsyncWriteStream; one writer coroutine at a time.
// Shared-owned so that a write in progress outlives the transport that queued it.
template <class Stream>
class LineWriter : public std::enable_shared_from_this<LineWriter<Stream>> {
 public:
  explicit LineWriter(std::shared_ptr<Stream> s) : stream_(std::move(s)) {}
  void push(std::string line, std::function<void(std::string)> on_error) {
    queue_.push_back(std::move(line));
    if (writing_) return;
    writing_ = true;
    asio::co_spawn(stream_->get_executor(), run(this->shared_from_this(), std::move(on_error)),
                   asio::detached);
  }

 private:
  asio::awaitable<void> run([[maybe_unused]] std::shared_ptr<LineWriter> self,
                            std::function<void(std::string)> on_error) {
    auto keep = stream_;
    while (!queue_.empty()) {
      std::string line = std::move(queue_.front());
      queue_.pop_front();
      auto [ec, n] = co_await asio::async_write(*keep, asio::buffer(line), kUseTuple);
      if (ec) {
        queue_.clear();
        writing_ = false;
        on_error("write failed: " + ec.message());
        co_return;
      }
    }
    writing_ = false;
  }

  std::shared_ptr<Stream> stream_;
  std::deque<std::string> queue_;
  bool writing_ = false;
};

// Reads newline-delimited JSON-RPC from `stream` into `inbox` until EOF or error, then calls
// `on_end` with the reason. Lines that are not JSON-RPC are logged and skipped: a server that
// prints a banner to stdout must not take the session down.
template <class Stream>
asio::awaitable<void> read_lines(std::shared_ptr<Stream> stream, Inbox* inbox,
                                 std::shared_ptr<bool> alive, std::string server,
                                 size_t max_message, std::function<void(std::string)> on_end) {
  jsonrpc::LineSplitter lines(max_message);
  std::string buf(64 * 1024, '\0');
  for (;;) {
    auto [ec, n] = co_await stream->async_read_some(asio::buffer(buf), kUseTuple);
    if (!*alive) co_return;
    if (ec) {
      on_end(ec == asio::error::eof ? "" : ec.message());
      co_return;
    }
    if (!lines.feed(std::string_view(buf.data(), n))) {
      on_end("server '" + server + "' sent a message over the " + std::to_string(max_message) +
             "-byte limit (max_message)");
      co_return;
    }
    while (auto line = lines.next()) {
      std::string error;
      auto msg = jsonrpc::parse(*line, error);
      if (!msg) {
        spdlog::warn("server '{}' sent a line that is not a JSON-RPC message ({}); skipped", server,
                     error);
        continue;
      }
      inbox->push(Inbound{std::move(msg->body), std::nullopt});
    }
  }
}

std::string line_of(const json::object& message) { return json::serialize(message) + "\n"; }

// ---------------------------------------------------------------------------------------------
// stdio: a spawned process per session.

// What the stdio and tcp transports share: one line writer, the inbox, and the flag that
// tells their detached reader and writer coroutines the transport is gone.
template <class Stream>
class LineTransport : public UpstreamTransport {
 public:
  bool send(const json::object& message, std::string& error) override {
    if (closed_ || inbox_.failed()) {
      error = inbox_.failed() ? inbox_.why() : "session closed";
      return false;
    }
    Inbox* inbox = &inbox_;
    auto alive = alive_;
    const std::string who = kind_ + " server '" + server_.name + "': ";
    writer_->push(line_of(message), [inbox, alive, who](std::string why) {
      if (*alive) inbox->fail(who + why);
    });
    return true;
  }

  asio::awaitable<std::optional<Inbound>> receive(std::string& error) override {
    co_return co_await inbox_.receive(error);
  }

  bool closed() const override { return closed_ || inbox_.failed(); }

 protected:
  LineTransport(asio::any_io_executor ex, const UpstreamServer& s, std::string kind)
      : ex_(ex), server_(s), inbox_(ex), alive_(std::make_shared<bool>(true)),
        kind_(std::move(kind)) {}

  asio::any_io_executor ex_;
  UpstreamServer server_;
  Inbox inbox_;
  std::shared_ptr<bool> alive_;
  std::shared_ptr<LineWriter<Stream>> writer_;
  bool closed_ = false;

 private:
  std::string kind_;  // "stdio" | "tcp", for messages
};

class StdioTransport final : public LineTransport<asio::posix::stream_descriptor> {
 public:
  StdioTransport(asio::any_io_executor ex, const UpstreamServer& s, Injection injection,
                 std::shared_ptr<ChildProcesses> children)
      : LineTransport(ex, s, "stdio"),
        children_(std::move(children)),
        injection_(std::move(injection)) {}

  ~StdioTransport() override { close(); }

  asio::awaitable<bool> open(std::string& error) override {
    // The environment's templates are expanded now, from the secrets loaded now.
    std::vector<std::pair<std::string, std::string>> env(server_.env.begin(), server_.env.end());
    std::vector<std::pair<std::string, std::string>> env_values;
    if (!injection_.expand(env, env_values, error)) {
      error = "env." + error;
      co_return false;
    }
    int in[2], out[2], err[2], status_pipe[2];
    if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC) ||
        ::pipe2(status_pipe, O_CLOEXEC)) {
      error = std::string("pipe2 failed: ") + std::strerror(errno);
      co_return false;
    }
    // Everything the child needs is prepared before fork(): after it only async-signal-safe
    // calls run.
    std::vector<std::string> env_store;
    for (char** e = environ; *e; ++e) {
      std::string kv(*e);
      const auto eq = kv.find('=');
      if (eq != std::string::npos && server_.env.count(kv.substr(0, eq))) continue;
      env_store.push_back(std::move(kv));
    }
    for (auto& [k, v] : env_values) {
      env_store.push_back(k + "=" + v);
      explicit_bzero(v.data(), v.size());
    }
    std::vector<char*> envp, argv;
    for (auto& e : env_store) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = server_.argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const char* cwd = server_.cwd.empty() ? nullptr : server_.cwd.c_str();

    children_->make_room(server_.name, server_.max_processes);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      error = std::string("fork failed: ") + std::strerror(errno);
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1], status_pipe[0], status_pipe[1]})
        ::close(fd);
      co_return false;
    }
    if (pid == 0) {
      ::setsid();  // its own process group, so that shutdown reaches its children too
      // Killed with the tunnel, however the tunnel ends; if it already has, do not start.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      ::signal(SIGPIPE, SIG_DFL);
      int e = 0;
      if (cwd && ::chdir(cwd) != 0) {
        e = errno;
      } else {
        ::execvpe(argv[0], argv.data(), envp.data());
        e = errno;
      }
      const char tag = cwd && e && ::access(cwd, X_OK) != 0 ? 'c' : 'e';
      (void)!::write(status_pipe[1], &tag, 1);
      (void)!::write(status_pipe[1], &e, sizeof e);
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    ::close(status_pipe[1]);
    // The tunnel's own catalog session is never the one ended to make room.
    std::function<void()> evict;
    if (!injection_.inventory) {
      evict = [this, limit = server_.max_processes] {
        inbox_.fail("stdio server '" + server_.name + "': this session's process was ended to "
                    "make room for a newer session (max_processes: " + std::to_string(limit) + ")");
        close();
      };
    }
    child_ = children_->add(server_.name, pid, std::move(evict));
    for (auto& e : env_store) explicit_bzero(e.data(), e.size());  // the child has its copy
    // The status pipe closes on a successful exec (CLOEXEC); otherwise it carries errno.
    char tag = 0;
    int child_errno = 0;
    ssize_t r = ::read(status_pipe[0], &tag, 1);
    if (r == 1) (void)!::read(status_pipe[0], &child_errno, sizeof child_errno);
    ::close(status_pipe[0]);
    stdin_ = std::make_shared<asio::posix::stream_descriptor>(ex_, in[1]);
    stdout_ = std::make_shared<asio::posix::stream_descriptor>(ex_, out[0]);
    stderr_ = std::make_shared<asio::posix::stream_descriptor>(ex_, err[0]);
    if (r == 1) {
      error = (tag == 'c' ? "cannot change to cwd '" + server_.cwd + "': "
                          : "cannot start '" + server_.argv[0] + "': ") +
              std::strerror(child_errno);
      close();
      co_return false;
    }
    writer_ = std::make_shared<LineWriter<asio::posix::stream_descriptor>>(stdin_);
    spdlog::info("server '{}': started '{}' (pid {})", server_.name, server_.argv[0], pid);
    auto alive = alive_;
    auto child = child_;
    auto children = children_;
    const std::string name = server_.name;
    Inbox* inbox = &inbox_;
    asio::co_spawn(
        ex_,
        read_lines(stdout_, inbox, alive, name, server_.max_message,
                   [alive, child, children, inbox, name](std::string why) {
                     if (!*alive) return;
                     children->reap();
                     inbox->fail("stdio server '" + name + "' " +
                                 (why.empty() ? "closed its stdout" : why) +
                                 (child->exited ? " (it " + child->describe() + ")" : ""));
                   }),
        asio::detached);
    asio::co_spawn(ex_, forward_stderr(stderr_, name), asio::detached);
    co_return true;
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    *alive_ = false;
    boost::system::error_code ec;
    if (stdin_) stdin_->close(ec);
    if (stdout_) stdout_->close(ec);
    // stderr keeps draining until the process is gone.
    inbox_.fail("session closed");
    if (child_) children_->stop(child_);
  }

  bool send(const json::object& message, std::string& error) override {
    if (child_) child_->last_used = std::chrono::steady_clock::now();
    return LineTransport::send(message, error);
  }
 private:
  static asio::awaitable<void> forward_stderr(std::shared_ptr<asio::posix::stream_descriptor> err,
                                              std::string name) {
    jsonrpc::LineSplitter lines(16 * 1024);
    std::string buf(8192, '\0');
    for (;;) {
      auto [ec, n] = co_await err->async_read_some(asio::buffer(buf), kUseTuple);
      if (ec) co_return;
      if (!lines.feed(std::string_view(buf.data(), n))) {
        spdlog::info("[{} stderr] (a line over 16 KiB, dropped)", name);
        lines = jsonrpc::LineSplitter(16 * 1024);
        continue;
      }
      while (auto line = lines.next()) spdlog::info("[{} stderr] {}", name, *line);
    }
  }

  std::shared_ptr<ChildProcesses> children_;
  std::shared_ptr<ChildProcess> child_;  // once started
  Injection injection_;
  std::shared_ptr<asio::posix::stream_descriptor> stdin_, stdout_, stderr_;
};

// ---------------------------------------------------------------------------------------------
// tcp: one connection per session, newline-delimited JSON-RPC.

class TcpTransport final : public LineTransport<tcp::socket> {
 public:
  TcpTransport(asio::any_io_executor ex, const UpstreamServer& s)
      : LineTransport(ex, s, "tcp") {}
  ~TcpTransport() override { close(); }

  asio::awaitable<bool> open(std::string& error) override {
    auto u = boost::urls::parse_uri(server_.url);
    const std::string host = std::string(u->host_address());
    const std::string port = std::string(u->port());
    tcp::resolver resolver(ex_);
    asio::steady_timer deadline(ex_, server_.connect_timeout);
    bool timed_out = false;
    socket_ = std::make_shared<tcp::socket>(ex_);
    auto sock = socket_;
    deadline.async_wait([&, sock](boost::system::error_code ec) {
      if (ec) return;
      timed_out = true;
      resolver.cancel();
      boost::system::error_code ignored;
      sock->close(ignored);
    });
    auto [rec, results] = co_await resolver.async_resolve(host, port, kUseTuple);
    if (rec) {
      deadline.cancel();
      error = timed_out ? "resolving '" + host + "' timed out"
                        : "cannot resolve '" + host + "': " + rec.message();
      co_return false;
    }
    auto [cec, ep] = co_await asio::async_connect(*socket_, results, kUseTuple);
    deadline.cancel();
    if (cec) {
      error = timed_out ? "no connection to " + host + ":" + port + " within " +
                              std::to_string(server_.connect_timeout.count()) + " ms"
                        : "cannot connect to " + host + ":" + port + ": " + cec.message();
      co_return false;
    }
    boost::system::error_code ignored;
    socket_->set_option(tcp::no_delay(true), ignored);
    writer_ = std::make_shared<LineWriter<tcp::socket>>(socket_);
    Inbox* inbox = &inbox_;
    auto alive = alive_;
    const std::string where = server_.name + "' at " + host + ":" + port;
    asio::co_spawn(
        ex_,
        read_lines(socket_, inbox, alive, server_.name, server_.max_message,
                   [inbox, alive, where](std::string why) {
                     if (*alive) {
                       inbox->fail("tcp server '" + where +
                                   (why.empty() ? " closed the connection" : ": " + why));
                     }
                   }),
        asio::detached);
    co_return true;
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    *alive_ = false;
    boost::system::error_code ec;
    if (socket_) {
      socket_->shutdown(tcp::socket::shutdown_both, ec);
      socket_->close(ec);
    }
    inbox_.fail("session closed");
  }
 private:
  std::shared_ptr<tcp::socket> socket_;
};

}  // namespace

Inbox::Inbox(asio::any_io_executor ex) : signal_(ex, asio::steady_timer::time_point::max()) {}

void Inbox::push(Inbound in) {
  if (failed_) return;
  queue_.push_back(std::move(in));
  signal_.cancel();
}

void Inbox::fail(std::string why) {
  if (failed_) return;
  failed_ = true;
  why_ = std::move(why);
  signal_.cancel();
}

asio::awaitable<std::optional<Inbound>> Inbox::receive(std::string& error) {
  for (;;) {
    if (!queue_.empty()) {
      Inbound in = std::move(queue_.front());
      queue_.pop_front();
      co_return in;
    }
    if (failed_) {
      error = why_;
      co_return std::nullopt;
    }
    signal_.expires_at(asio::steady_timer::time_point::max());
    co_await signal_.async_wait(kUseTuple);
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) {
      error = "cancelled";
      co_return std::nullopt;
    }
  }
}

std::unique_ptr<UpstreamTransport> make_stdio_transport(asio::any_io_executor ex,
                                                        const UpstreamServer& server,
                                                        const Injection& injection,
                                                        std::shared_ptr<ChildProcesses> children) {
  return std::make_unique<StdioTransport>(ex, server, injection, std::move(children));
}

std::unique_ptr<UpstreamTransport> make_tcp_transport(asio::any_io_executor ex,
                                                      const UpstreamServer& server) {
  return std::make_unique<TcpTransport>(ex, server);
}

std::unique_ptr<UpstreamTransport> make_transport(asio::any_io_executor ex,
                                                  const UpstreamServer& server,
                                                  const Injection& injection,
                                                  std::shared_ptr<ChildProcesses> children) {
  if (server.url.rfind("stdio:", 0) == 0) {
    return make_stdio_transport(ex, server, injection, std::move(children));
  }
  if (server.url.rfind("tcp://", 0) == 0) return make_tcp_transport(ex, server);
  return make_http_transport(ex, server, injection);
}

bool Injection::expand(const std::vector<std::pair<std::string, std::string>>& templates,
                       std::vector<std::pair<std::string, std::string>>& out,
                       std::string& error) const {
  out.clear();
  if (templates.empty()) return true;
  std::shared_ptr<const secrets::SecretSet> set = store ? store->current() : nullptr;
  static const secrets::SecretSet kEmpty;
  const secrets::SecretSet& secrets = set ? *set : kEmpty;
  const secrets::SecretValue* agent = nullptr;
  if (!agent_credential.empty()) {
    agent = secrets.find(agent_credential);
    if (!agent) {
      error = "credential '" + agent_credential + "' is not loaded in this tunnel";
      return false;
    }
  }
  for (const auto& [name, text] : templates) {
    if (!agent && inventory && text.find("${agent_secret}") != std::string::npos) continue;
    std::string value;
    if (!secrets::expand(text, secrets, agent, value, error)) {
      error = name + ": " + error;
      return false;
    }
    out.emplace_back(name, std::move(value));
  }
  return true;
}

}  // namespace airlock::tunnel
