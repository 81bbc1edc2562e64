#include "sandbox/sandbox_handles.h"

#include "common/token.h"

namespace airlock::sandbox {

SandboxHandles::SandboxHandles(asio::any_io_executor ex, std::chrono::milliseconds idle_timeout,
                               Removed removed)
    : executor_(ex), idle_timeout_(idle_timeout), removed_(std::move(removed)) {}

SandboxHandles::~SandboxHandles() {
  for (auto& [handle, e] : handles_) e.sandbox->close();
}

std::string SandboxHandles::add(const std::string& agent, std::shared_ptr<SandboxSession> sandbox) {
  std::string handle = "sbx_" + random_hex(16);
  Entry& e = handles_[handle];
  e.agent = agent;
  e.sandbox = std::move(sandbox);
  e.idle = std::make_unique<asio::steady_timer>(executor_);
  arm(handle, e);
  return handle;
}

std::shared_ptr<SandboxSession> SandboxHandles::find(const std::string& agent,
                                                     const std::string& handle,
                                                     std::string& why) const {
  auto it = handles_.find(handle);
  if (it != handles_.end() && it->second.agent == agent && !it->second.sandbox->ended()) {
    return it->second.sandbox;
  }
  why = unknown(handle);
  return nullptr;
}

std::string SandboxHandles::unknown(const std::string& handle) {
  return "no sandbox '" + handle + "' is open for this agent (it was closed, idled out or " +
         "ended, or was never opened here); call sandbox_open for a new one — its workspace " +
         "starts empty";
}

void SandboxHandles::call_started(const std::string& handle) {
  auto it = handles_.find(handle);
  if (it == handles_.end()) return;
  ++it->second.calls;
  it->second.idle->cancel();
}

void SandboxHandles::call_finished(const std::string& handle) {
  auto it = handles_.find(handle);
  if (it == handles_.end() || it->second.calls == 0) return;
  if (--it->second.calls == 0) arm(handle, it->second);
}

bool SandboxHandles::remove(const std::string& agent, const std::string& handle, std::string& why) {
  auto it = handles_.find(handle);
  if (it == handles_.end() || it->second.agent != agent) {
    why = unknown(handle);
    return false;
  }
  erase(it, false);
  return true;
}

void SandboxHandles::remove_all() {
  while (!handles_.empty()) erase(handles_.begin(), false);
}

void SandboxHandles::arm(const std::string& handle, Entry& e) {
  e.idle->expires_after(idle_timeout_);
  e.idle->async_wait(
      [this, handle, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
        if (ec || alive.expired()) return;
        auto it = handles_.find(handle);
        if (it == handles_.end() || it->second.calls > 0) return;
        erase(it, true);
      });
}

void SandboxHandles::erase(std::map<std::string, Entry>::iterator it, bool idle) {
  const std::string handle = it->first;
  const std::string agent = it->second.agent;
  it->second.idle->cancel();
  it->second.sandbox->close();
  handles_.erase(it);
  if (removed_) removed_(handle, agent, idle);
}

}  // namespace airlock::sandbox
