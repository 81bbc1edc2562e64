// Test harness for end-to-end tests: temporary directories, io_context threads, airlockd and
// connectors in-process, real programs as child processes, and captured logs. Every wait has a
// deadline; a hang fails the test instead of stalling the suite.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/connector.h"
#include "common/http_client.h"
#include "controlplane/server.h"
#include "test/e2e/temp_dir.h"

namespace airlock::test {
namespace asio = boost::asio;
using namespace std::chrono_literals;

// An io_context on its own thread. run() executes a coroutine there and waits for it.
class IoThread {
 public:
  IoThread();
  ~IoThread();
  asio::io_context& io() { return io_; }
  asio::any_io_executor executor() { return io_.get_executor(); }
  template <class T>
  T run(asio::awaitable<T> a, std::chrono::milliseconds timeout = 60s) {
    auto p = std::make_shared<std::promise<T>>();
    auto f = p->get_future();
    asio::co_spawn(io_, std::move(a), [p](std::exception_ptr e, T v) {
      if (e) p->set_exception(e); else p->set_value(std::move(v));
    });
    if (f.wait_for(timeout) != std::future_status::ready) throw std::runtime_error("timed out");
    return f.get();
  }
  void run(asio::awaitable<void> a, std::chrono::milliseconds timeout = 60s);
  // Runs `f` on the io thread and waits for its result.
  template <class F>
  auto call(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto fut = task.get_future();
    asio::post(io_, [&task] { task(); });
    if (fut.wait_for(30s) != std::future_status::ready) throw std::runtime_error("call timed out");
    return fut.get();
  }
  void stop();

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

// airlockd in-process, on 127.0.0.1 with a port chosen by the kernel and real TLS.
class InProcessAirlockd {
 public:
  explicit InProcessAirlockd(std::function<void(controlplane::AirlockdConfig&)> tweak = nullptr);
  ~InProcessAirlockd();
  controlplane::ControlPlane& cp() { return *cp_; }
  IoThread& thread() { return thread_; }
  std::string endpoint() const;  // wss://127.0.0.1:PORT/v1/connect
  std::string ca_file() const { return state_.path + "/ca.pem"; }
  HttpClientOptions admin() const;
  // Creates the resource through the admin API and returns its token.
  std::string create(const std::string& kind, const std::string& name);
  // GET /v1/<kind>s/<name> through the admin API.
  boost::json::object status(const std::string& kind, const std::string& name);
  // Waits until the resource shows `status` with `links` links (links < 0: any).
  bool wait_status(const std::string& kind, const std::string& name, const std::string& status,
                   int links, std::chrono::milliseconds timeout);

 private:
  TempDir state_;
  IoThread thread_;
  std::unique_ptr<controlplane::ControlPlane> cp_;
};

// Connector options for the in-process airlockd, ready to run.
ConnectorOptions connector_options(const InProcessAirlockd& a, const std::string& token,
                                   int ha_connections = 1);

class InProcessConnector {
 public:
  InProcessConnector(ConnectorOptions options, Link::StreamHandler handler_on_thread);
  ~InProcessConnector();
  IoThread& thread() { return thread_; }
  Connector& connector() { return *connector_; }
  void stop();  // graceful: GOAWAY and drain

 private:
  IoThread thread_;
  std::unique_ptr<Connector> connector_;
  bool stopped_ = false;
};

// Stream handler for tests, run on the stream's own executor. Meta kind "stall": never reads;
// "sink": reads to the end, answers with the byte count; "reset": resets the stream with a
// reason that quotes the metadata; anything else: echo every byte back,
// then end — after `delay` (for drain tests).
Link::StreamHandler test_handler(std::chrono::milliseconds delay = 0ms);

// Deterministic payload for stream i of `size` bytes.
std::string payload(size_t i, size_t size);

// A real program run as a child process, stdout and stderr into one log file.
class Process {
 public:
  Process(const std::string& program, const std::vector<std::string>& args,
          const std::vector<std::string>& env = {}, const std::string& log_path = "");
  ~Process();
  pid_t pid() const { return pid_; }
  std::string output() const;
  bool wait_output(const std::string& needle, std::chrono::milliseconds timeout) const;
  void signal(int sig);
  // Exit code, or -signal; throws after `timeout`.
  int wait(std::chrono::milliseconds timeout);
  bool running();

 private:
  pid_t pid_ = -1;
  std::string log_;
  bool reaped_ = false;
  int status_ = 0;
};

// Runs a program to completion, returns exit code and combined output.
std::pair<int, std::string> run_program(const std::string& program,
                                        const std::vector<std::string>& args,
                                        const std::vector<std::string>& env = {});

std::string bin(const std::string& name);  // path of a built program

// Captures everything logged through spdlog while alive.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  bool contains(const std::string& needle) const;
  std::string text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Polls `pred` every 10 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

}  // namespace airlock::test
