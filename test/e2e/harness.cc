#include "test/e2e/harness.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

extern char** environ;

namespace airlock::test {
namespace fs = std::filesystem;
namespace json = boost::json;

TempDir::TempDir() {
  char tmpl[] = "/tmp/airlock-e2e-XXXXXX";
  path = mkdtemp(tmpl);
}
TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

IoThread::IoThread() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
IoThread::~IoThread() { stop(); }

void IoThread::stop() {
  if (!thread_.joinable()) return;
  work_.reset();
  io_.stop();
  thread_.join();
}

void IoThread::run(asio::awaitable<void> a, std::chrono::milliseconds timeout) {
  auto p = std::make_shared<std::promise<void>>();
  auto f = p->get_future();
  asio::co_spawn(io_, std::move(a), [p](std::exception_ptr e) {
    if (e) p->set_exception(e); else p->set_value();
  });
  if (f.wait_for(timeout) != std::future_status::ready) throw std::runtime_error("timed out");
  f.get();
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// --- airlockd in-process -----------------------------------------------------------------------
InProcessAirlockd::InProcessAirlockd(std::function<void(controlplane::AirlockdConfig&)> tweak) {
  controlplane::AirlockdConfig c;
  c.listen_host = "127.0.0.1";
  c.listen_port = 0;
  c.state_dir = state_.path;
  c.connectors.heartbeat_interval = 500ms;
  c.connectors.dead_peer_timeout = 5s;
  c.connectors.drain_timeout = 2s;
  if (tweak) tweak(c);
  cp_ = std::make_unique<controlplane::ControlPlane>(thread_.executor(), c);
  thread_.call([this] {
    cp_->start();
    asio::co_spawn(thread_.io(), cp_->serve(), asio::detached);
    return 0;
  });
}

InProcessAirlockd::~InProcessAirlockd() {
  try {
    thread_.run(cp_->shutdown(), 20s);
  } catch (...) {
  }
  thread_.stop();
  cp_.reset();
}

std::string InProcessAirlockd::endpoint() const {
  return std::string(cp_->config().tls.plaintext ? "ws" : "wss") + "://127.0.0.1:" +
         std::to_string(cp_->port()) + "/v1/connect";
}

HttpClientOptions InProcessAirlockd::admin() const {
  HttpClientOptions o;
  o.base_url = cp_->url();
  if (!cp_->config().tls.plaintext) o.tls.ca_file = ca_file();
  std::ifstream f(cp_->admin_token_file());
  std::getline(f, o.bearer);
  return o;
}

std::string InProcessAirlockd::create(const std::string& kind, const std::string& name) {
  auto r = http_call(admin(), "POST", "/v1/" + kind + (kind == "sandbox" ? "es" : "s"),
                     json::serialize(json::object{{"name", name}}));
  if (r.status != 201) throw std::runtime_error("create failed: " + r.error + r.body);
  return std::string(json::parse(r.body).at("token").as_string());
}

json::object InProcessAirlockd::status(const std::string& kind, const std::string& name) {
  auto r = http_call(admin(), "GET", "/v1/" + kind + (kind == "sandbox" ? "es/" : "s/") + name);
  if (r.status != 200) throw std::runtime_error("status failed: " + r.error + r.body);
  return json::parse(r.body).as_object();
}

bool InProcessAirlockd::wait_status(const std::string& kind, const std::string& name,
                                    const std::string& want, int links,
                                    std::chrono::milliseconds timeout) {
  return eventually(
      [&] {
        auto s = status(kind, name);
        return s.at("status").as_string() == want &&
               (links < 0 || s.at("connections").to_number<int64_t>() == links);
      },
      timeout);
}

ConnectorOptions connector_options(const InProcessAirlockd& a, const std::string& token,
                                   int ha_connections) {
  ConnectorOptions o;
  std::string error;
  o.dial.endpoint = *parse_endpoint(a.endpoint(), error);
  o.dial.token = token;
  if (o.dial.endpoint.tls) o.dial.tls.ca_file = a.ca_file();
  o.dial.user_agent = "test-connector/1";
  o.hello.kind = proto::ConnectorKind::kTunnel;
  o.hello.software = "test-connector/1";
  o.ha_connections = ha_connections;
  o.backoff.base = 50ms;
  o.backoff.cap = 500ms;
  o.drain_timeout = 5s;
  return o;
}

// --- connectors in-process ---------------------------------------------------------------------
InProcessConnector::InProcessConnector(ConnectorOptions options, Link::StreamHandler handler) {
  connector_ = std::make_unique<Connector>(thread_.executor(), std::move(options),
                                           std::move(handler));
  asio::co_spawn(thread_.io(), connector_->run(), asio::detached);
}

InProcessConnector::~InProcessConnector() {
  stop();
  thread_.stop();
  connector_.reset();
}

void InProcessConnector::stop() {
  if (stopped_) return;
  stopped_ = true;
  try {
    thread_.run(connector_->stop(), 30s);
  } catch (...) {
  }
}

namespace {

asio::awaitable<void> echo(std::shared_ptr<LinkStream> s, std::chrono::milliseconds delay) {
  if (delay.count() > 0) {
    asio::steady_timer t(co_await asio::this_coro::executor, delay);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  for (;;) {
    auto chunk = co_await s->read();
    if (!chunk) co_return;
    if (chunk->empty()) {
      co_await s->write("", true);
      co_return;
    }
    if (co_await s->write(*chunk, false)) co_return;
  }
}

// Reads everything, then answers with the number of bytes read.
asio::awaitable<void> sink(std::shared_ptr<LinkStream> s) {
  size_t total = 0;
  for (;;) {
    auto chunk = co_await s->read();
    if (!chunk) co_return;
    if (chunk->empty()) break;
    total += chunk->size();
  }
  co_await s->write(std::to_string(total), true);
}

}  // namespace

Link::StreamHandler test_handler(std::chrono::milliseconds delay) {
  return [delay](std::shared_ptr<LinkStream> s) {
    auto ex = s->executor();
    if (s->meta().find("\"stall\"") != std::string::npos) {
      // Hold the stream without reading: its window closes and the sender must stop.
      asio::co_spawn(ex, [s]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor, 120s);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      }, asio::detached);
      return;
    }
    if (s->meta().find("\"reset\"") != std::string::npos) {
      s->reset(proto::ResetCode::kRefused, "refused: " + s->meta());  // echoes the meta back
      return;
    }
    if (s->meta().find("\"sink\"") != std::string::npos) {
      asio::co_spawn(ex, sink(s), asio::detached);
      return;
    }
    asio::co_spawn(ex, echo(s, delay), asio::detached);
  };
}

std::string payload(size_t i, size_t size) {
  std::string out(size, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ULL * (i + 1);
  for (size_t k = 0; k < size; ++k) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[k] = static_cast<char>(x);
  }
  return out;
}

// --- processes ---------------------------------------------------------------------------------
std::string bin(const std::string& name) { return std::string(AIRLOCK_BIN_DIR) + "/" + name; }

Process::Process(const std::string& program, const std::vector<std::string>& args,
                 const std::vector<std::string>& env, const std::string& log_path) {
  log_ = log_path.empty() ? "/tmp/airlock-proc-" + std::to_string(getpid()) + "-" +
                                std::to_string(reinterpret_cast<uintptr_t>(this)) + ".log"
                          : log_path;
  std::vector<std::string> argv_s{program};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
  env_s.insert(env_s.end(), env.begin(), env.end());
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    std::vector<char*> argv, envp;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    execve(program.c_str(), argv.data(), envp.data());
    _exit(127);
  }
}

Process::~Process() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait(10s);
  }
  std::error_code ec;
  fs::remove(log_, ec);
}

std::string Process::output() const {
  std::ifstream f(log_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool Process::wait_output(const std::string& needle, std::chrono::milliseconds timeout) const {
  return eventually([&] { return output().find(needle) != std::string::npos; }, timeout);
}

void Process::signal(int sig) {
  if (!reaped_) ::kill(pid_, sig);
}

bool Process::running() {
  if (reaped_) return false;
  int st = 0;
  if (waitpid(pid_, &st, WNOHANG) == pid_) {
    reaped_ = true;
    status_ = st;
    return false;
  }
  return true;
}

int Process::wait(std::chrono::milliseconds timeout) {
  if (!eventually([&] { return !running(); }, timeout)) {
    throw std::runtime_error("process " + std::to_string(pid_) + " did not exit in time");
  }
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : -WTERMSIG(status_);
}

std::pair<int, std::string> run_program(const std::string& program,
                                        const std::vector<std::string>& args,
                                        const std::vector<std::string>& env) {
  Process p(program, args, env);
  const int code = p.wait(60s);
  return {code, p.output()};
}

// --- log capture -------------------------------------------------------------------------------
struct LogCapture::Impl {
  class Sink : public spdlog::sinks::base_sink<std::mutex> {
   public:
    std::string snapshot() {
      std::lock_guard<std::mutex> lock(mutex_);
      return text;
    }

   protected:
    std::string text;
    void sink_it_(const spdlog::details::log_msg& msg) override {
      text.append(msg.payload.data(), msg.payload.size());
      text.push_back('\n');
    }
    void flush_() override {}
  };
  std::shared_ptr<Sink> sink = std::make_shared<Sink>();
};

LogCapture::LogCapture() : impl_(std::make_unique<Impl>()) {
  spdlog::default_logger()->sinks().push_back(impl_->sink);
}

LogCapture::~LogCapture() {
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), impl_->sink), sinks.end());
}

std::string LogCapture::text() const {
  return impl_->sink->snapshot();
}

bool LogCapture::contains(const std::string& needle) const {
  return text().find(needle) != std::string::npos;
}

}  // namespace airlock::test
