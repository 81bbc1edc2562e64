#include "sandbox/sandbox_pool.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>

#include "common/backoff.h"
#include "sandbox/sandbox.h"

namespace airlock::sandbox {
namespace {
constexpr const char* kToolbox = "sandbox-agent-toolbox";
}  // namespace

std::string toolbox_beside(const std::string& self) {
  std::error_code ec;
  const auto path = std::filesystem::path(self).parent_path() / kToolbox;
  return std::filesystem::exists(path, ec) ? path.string() : std::string();
}

SandboxPool::SandboxPool(asio::any_io_executor ex, SandboxPoolOptions options)
    : executor_(ex), options_(std::move(options)), refill_timer_(ex), check_timer_(ex) {
  if (!options_.secrets) {
    options_.secrets = std::make_shared<secrets::SecretStore>(options_.config.secrets);
    options_.secrets->load();
  }
  warm_pool_ = std::min(options_.config.warm_pool, options_.config.max_sessions);
}

SandboxPool::~SandboxPool() {
  for (auto& s : pool_) s->close();
}

void SandboxPool::start() {
  if (options_.toolbox_path.empty()) {
    std::error_code ec;
    options_.toolbox_path = toolbox_beside(std::filesystem::read_symlink("/proc/self/exe", ec));
  }
  if (options_.toolbox_path.empty() || ::access(options_.toolbox_path.c_str(), X_OK) != 0) {
    throw std::runtime_error(std::string(kToolbox) + " was not found next to sandbox-agent (" +
                             (options_.toolbox_path.empty() ? "none" : options_.toolbox_path) +
                             "): install the two together");
  }
  SessionFactoryOptions fo{.config = options_.config,
                           .image = options_.image,
                           .secrets = options_.secrets,
                           .toolbox_path = options_.toolbox_path,
                           .runtime_dir = options_.runtime_dir};
  factory_ = std::make_unique<SessionFactory>(executor_, std::move(fo));
  if (!factory_->cgroups().usable()) {
    throw std::runtime_error("no usable cgroup hierarchy: " + factory_->cgroups().why_unusable);
  }
  if (size_t n = remove_leftovers(factory_->cgroups(), options_.runtime_dir)) {
    spdlog::info("removed {} leftover(s) of sandbox runs whose agent is gone", n);
  }
}

asio::awaitable<void> SandboxPool::check(std::function<void()> on_change) {
  Backoff backoff(BackoffPolicy{.base = std::chrono::seconds(1), .cap = std::chrono::seconds(60)});
  while (!stopping_) {
    std::string error;
    auto first = factory_->start(error);
    if (first && co_await first->ready()) {
      status_ = Status::kOk;
      error_.clear();
      pool_.push_back(first);
      spdlog::info("sandbox check passed: sessions can be served");
      if (on_change) on_change();
      refill();
      co_return;
    }
    const std::string why = first ? first->ended_reason() : error;
    if (status_ != Status::kUnavailable || why != error_) {
      spdlog::error("sandbox check failed: {}", why);
    }
    status_ = Status::kUnavailable;
    error_ = why;
    if (on_change) on_change();
    check_timer_.expires_after(backoff.next_delay());
    co_await check_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

std::shared_ptr<SandboxSession> SandboxPool::acquire(std::string& problem, bool& busy) {
  busy = false;
  const auto& c = options_.config;
  if (stopping_) {
    problem = "sandbox-agent is stopping";
    return nullptr;
  }
  if (status_ != Status::kOk) {
    problem = "sandbox '" + c.name + "' cannot serve sessions: " +
              (error_.empty() ? "its first sandbox is still being built" : error_);
    return nullptr;
  }
  if (in_use_ >= c.max_sessions) {
    busy = true;
    problem = "sandbox '" + c.name + "' is busy: all " + std::to_string(c.max_sessions) +
              " sessions (max_sessions) are in use; try again later";
    return nullptr;
  }
  std::shared_ptr<SandboxSession> sandbox;
  while (!pool_.empty() && !sandbox) {
    sandbox = std::move(pool_.front());
    pool_.pop_front();
    if (sandbox->ended()) sandbox.reset();
  }
  if (!sandbox) {
    std::string error;
    sandbox = factory_->start(error);
    if (!sandbox) {
      problem = "cannot start a sandbox: " + error;
      return nullptr;
    }
  }
  ++in_use_;
  schedule_refill();
  return sandbox;
}

void SandboxPool::release() {
  if (in_use_ > 0) --in_use_;
  schedule_refill();
}

void SandboxPool::call_finished() {
  if (calls_in_flight_ > 0 && --calls_in_flight_ == 0) schedule_refill();
}

void SandboxPool::refill() {
  if (stopping_ || !factory_ || status_ != Status::kOk) return;
  // Ended sandboxes (a limit, a failure) are dropped; the pool never grows past what
  // max_sessions leaves room for.
  std::erase_if(pool_, [](const auto& s) { return s->ended(); });
  const size_t max = options_.config.max_sessions;
  const size_t room = max > in_use_ ? max - in_use_ : 0;
  while (pool_.size() < std::min(warm_pool_, room)) {
    std::string error;
    auto s = factory_->start(error);
    if (!s) {
      spdlog::warn("could not start a sandbox for the warm pool: {}", error);
      return;
    }
    pool_.push_back(std::move(s));
  }
}

void SandboxPool::schedule_refill() {
  // Starting a sandbox under cgroup v1 moves its first process into its cgroups, and while a
  // move waits for the kernel (an RCU grace period, 10 ms and more) every fork and exit on the
  // host waits too: calls in flight would pay for it. So the pool is refilled when no call is
  // in flight, a moment after the last one — unless it is empty: then the next session would
  // wait for a sandbox anyway.
  if (pool_.empty()) {
    refill();
    return;
  }
  if (calls_in_flight_ > 0 || refill_scheduled_) return;
  refill_scheduled_ = true;
  refill_timer_.expires_after(std::chrono::milliseconds(20));
  refill_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    refill_scheduled_ = false;
    if (calls_in_flight_ == 0) refill();
  });
}

const char* SandboxPool::status_name() const {
  switch (status_) {
    case Status::kOk:
      return "ok";
    case Status::kUnavailable:
      return "unavailable";
    case Status::kPending:
      break;
  }
  return "pending";
}

void SandboxPool::stop() {
  stopping_ = true;
  refill_timer_.cancel();
  check_timer_.cancel();
  for (auto& s : pool_) s->close();
  pool_.clear();
}

asio::awaitable<void> SandboxPool::wait_all(std::chrono::milliseconds limit) {
  if (factory_) co_await factory_->wait_all(limit);
}

}  // namespace airlock::sandbox
