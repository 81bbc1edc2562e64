// SandboxHandles: the sandboxes agents hold by handle — how an agent without an MCP session
// (MCP 2026-07-28: every request stands alone) keeps a workspace and a shell across its calls.
// `sandbox_open` gives the agent a handle ("sbx_" and 128 random bits), which it passes as the
// `sandbox_id` argument of later calls (toolset.h, "Sandboxes by handle"); the handle is a
// name, not a capability: it works only for the agent that opened it, and for any other it is
// as unknown as one that never existed. A sandbox is removed after `idle_timeout` without a
// call (session_idle_timeout), by sandbox_close, when it dies, or when the agent stops — and
// its removal is reported so that its owner returns it to the pool.
// One executor (the connected agent's); not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "sandbox/session.h"

namespace airlock::sandbox {
namespace asio = boost::asio;

class SandboxHandles {
 public:
  // `removed` is called once for every sandbox removed, whatever the reason, after it was
  // closed: `idle` says the idle timeout removed it.
  using Removed =
      std::function<void(const std::string& handle, const std::string& agent, bool idle)>;
  SandboxHandles(asio::any_io_executor ex, std::chrono::milliseconds idle_timeout, Removed removed);
  ~SandboxHandles();

  // A new handle, `agent`'s, for `sandbox`; its idle timeout starts now.
  std::string add(const std::string& agent, std::shared_ptr<SandboxSession> sandbox);
  // `agent`'s sandbox named `handle`, alive; null with `why` — the same words whether the
  // handle never existed, was removed, or is another agent's.
  std::shared_ptr<SandboxSession> find(const std::string& agent, const std::string& handle,
                                       std::string& why) const;
  // A call in `handle`'s sandbox begins / has ended: no idle timeout while one runs.
  void call_started(const std::string& handle);
  void call_finished(const std::string& handle);
  // Removes `agent`'s `handle` with its sandbox; false (nothing done) when there is none, with
  // `why` — the words find() gives.
  bool remove(const std::string& agent, const std::string& handle, std::string& why);
  // Removes every sandbox (the agent is stopping).
  void remove_all();

  size_t size() const { return handles_.size(); }

 private:
  struct Entry {
    std::string agent;
    std::shared_ptr<SandboxSession> sandbox;
    size_t calls = 0;
    std::unique_ptr<asio::steady_timer> idle;
  };
  void arm(const std::string& handle, Entry& e);
  void erase(std::map<std::string, Entry>::iterator it, bool idle);
  // What an agent is told of a handle that is not one of its open sandboxes.
  static std::string unknown(const std::string& handle);

  asio::any_io_executor executor_;
  std::chrono::milliseconds idle_timeout_;
  Removed removed_;
  std::map<std::string, Entry> handles_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // for timers that outlive this
};

}  // namespace airlock::sandbox
