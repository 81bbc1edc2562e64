#include "common/secrets_watcher.h"

#include <sys/inotify.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>

namespace airlock::secrets {

SecretWatcher::SecretWatcher(asio::any_io_executor ex, std::shared_ptr<SecretStore> store,
                             OnReload on_reload)
    : store_(std::move(store)),
      on_reload_(std::move(on_reload)),
      signals_(ex),
      inotify_(ex),
      settle_(ex),
      buffer_(16 * 1024) {}

SecretWatcher::~SecretWatcher() { stop(); }

void SecretWatcher::start() {
  signals_.add(SIGHUP);
  wait_signal();
  const auto dirs = store_->watched_directories();
  if (dirs.empty()) return;
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("inotify_init1: ") + std::strerror(errno));
  inotify_.assign(fd);
  for (const auto& dir : dirs) {
    const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                          IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
    if (::inotify_add_watch(fd, dir.c_str(), mask) < 0) {
      throw std::runtime_error("cannot watch secret directory " + dir + ": " +
                               std::strerror(errno));
    }
  }
  spdlog::info("watching {} secret director{} for changes; SIGHUP reloads too", dirs.size(),
               dirs.size() == 1 ? "y" : "ies");
  read_events();
}

void SecretWatcher::stop() {
  stopped_ = true;
  boost::system::error_code ec;
  signals_.cancel(ec);
  settle_.cancel();
  if (inotify_.is_open()) inotify_.close(ec);
}

void SecretWatcher::wait_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec || stopped_) return;
    reload("SIGHUP");
    wait_signal();
  });
}

void SecretWatcher::read_events() {
  inotify_.async_read_some(
      asio::buffer(buffer_), [this](const boost::system::error_code& ec, size_t) {
        if (ec || stopped_) return;
        // Which file changed does not matter: the whole set is reloaded, once things settle.
        if (!settling_) {
          settling_ = true;
          settle_.expires_after(std::chrono::milliseconds(100));
          settle_.async_wait([this](const boost::system::error_code& tec) {
            if (tec) return;  // cancelled: the watcher may be gone
            settling_ = false;
            if (stopped_) return;
            reload("a secret file changed");
          });
        }
        read_events();
      });
}

void SecretWatcher::reload(const std::string& why) {
  std::string error;
  std::vector<std::string> changed;
  if (!store_->reload(error, &changed)) {
    ++failures_;
    spdlog::error("secrets not reloaded ({}): {}; the previous values stay in use", why, error);
    return;
  }
  ++reloads_;
  if (changed.empty()) {
    spdlog::info("secrets reloaded ({}): nothing changed", why);
    return;
  }
  std::string names;
  for (const auto& n : changed) names += (names.empty() ? "" : ", ") + n;
  spdlog::info("secrets reloaded ({}): {} changed", why, names);
  if (on_reload_) on_reload_(changed);
}

}  // namespace airlock::secrets
