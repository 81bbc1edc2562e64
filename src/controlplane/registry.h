// ConnectorRegistry: the live connector links airlockd holds, per resource (kind, name), and
// the choice of link for a new stream: round-robin for tunnels; for sandboxes, a link of the
// replica (connector process) with the most free sessions, by what each last reported. In
// memory only: what survives restarts is in Store.
// Owned by ControlPlane; touched only from airlockd's io thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/handshake.h"
#include "common/link.h"

namespace airlock::controlplane {

struct LiveConnection {
  std::string connection_id;
  std::shared_ptr<Link> link;
  std::string version;  // the connector's software string from its hello
  std::string remote;   // ip:port it connected from
  int64_t connected_since_ms = 0;
  std::vector<proto::InventoryServer> inventory;
  std::string instance;  // the connector process: its links share it
  std::optional<proto::SandboxDescription> sandbox;
  // Sandboxes: sessions in use and max_sessions, as last reported (plus sessions placed here
  // since), the same on every link of the instance.
  uint32_t sessions_in_use = 0;
  uint32_t max_sessions = 0;
};

class ConnectorRegistry {
 public:
  using Key = std::pair<std::string, std::string>;  // (kind, name)

  void add(const Key& key, LiveConnection connection);
  void remove(const Key& key, const std::string& connection_id);
  // A live, non-draining link of `key` for a new stream; null when there is none. Sandboxes:
  // one of the replica with the most free sessions (counted as placed at once).
  std::shared_ptr<Link> pick(const Key& key);
  // A replica of `key` reported its sessions.
  void set_load(const Key& key, const std::string& instance, uint32_t in_use, uint32_t limit);
  const std::vector<LiveConnection>* connections(const Key& key) const;
  // Closes every link of `key` with a GOAWAY carrying `code` and `reason`; returns how many.
  size_t close_all(const Key& key, proto::ResetCode code, const std::string& reason);
  // Every live link, for shutdown.
  std::vector<std::shared_ptr<Link>> all_links() const;

 private:
  std::map<Key, std::vector<LiveConnection>> live_;
  std::map<Key, size_t> next_;
};

}  // namespace airlock::controlplane
