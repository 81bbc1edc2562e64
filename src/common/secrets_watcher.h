// SecretWatcher: reloads a SecretStore on SIGHUP and when a file in one of its directories
// changes (inotify; edits, atomic renames and Kubernetes' ..data symlink swaps alike), after
// a short settling delay so that a burst of changes reloads once. A failed reload keeps the
// previous secrets and is logged with the reason. Connections and calls in flight are not
// touched: new upstream sessions use the new values, the redactor catches old and new.
// One executor; not thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/secrets.h"

namespace airlock::secrets {
namespace asio = boost::asio;

class SecretWatcher {
 public:
  // Called after every successful reload that changed something, with the changed names.
  using OnReload = std::function<void(const std::vector<std::string>& changed)>;

  SecretWatcher(asio::any_io_executor ex, std::shared_ptr<SecretStore> store, OnReload on_reload);
  ~SecretWatcher();

  // Installs the SIGHUP handler and the inotify watches. Throws std::runtime_error naming a
  // directory that cannot be watched.
  void start();
  void stop();
  // Reloads now; `why` goes to the log.
  void reload(const std::string& why);

  uint64_t reloads() const { return reloads_; }
  uint64_t failures() const { return failures_; }

 private:
  void wait_signal();
  void read_events();

  std::shared_ptr<SecretStore> store_;
  OnReload on_reload_;
  asio::signal_set signals_;
  asio::posix::stream_descriptor inotify_;
  asio::steady_timer settle_;
  std::vector<char> buffer_;
  bool settling_ = false;
  bool stopped_ = false;
  uint64_t reloads_ = 0;
  uint64_t failures_ = 0;
};

}  // namespace airlock::secrets
