#include "controlplane/registry.h"

#include <algorithm>

namespace airlock::controlplane {

void ConnectorRegistry::add(const Key& key, LiveConnection connection) {
  live_[key].push_back(std::move(connection));
}

void ConnectorRegistry::remove(const Key& key, const std::string& connection_id) {
  auto it = live_.find(key);
  if (it == live_.end()) return;
  auto& v = it->second;
  v.erase(std::remove_if(v.begin(), v.end(),
                         [&](const LiveConnection& c) { return c.connection_id == connection_id; }),
          v.end());
  if (v.empty()) live_.erase(it);
}

std::shared_ptr<Link> ConnectorRegistry::pick(const Key& key) {
  auto it = live_.find(key);
  if (it == live_.end()) return nullptr;
  auto& v = it->second;
  size_t& next = next_[key];
  if (key.first == "sandbox") {
    // The replica with the most free sessions; among its links, round-robin.
    std::string best;
    int64_t best_free = -1;
    for (const auto& c : v) {
      if (c.link->closed() || c.link->draining()) continue;
      const int64_t free = int64_t{c.max_sessions} - c.sessions_in_use;
      if (free > best_free) best_free = free, best = c.instance;
    }
    if (best_free < 0) return nullptr;
    for (size_t i = 0; i < v.size(); ++i) {
      auto& c = v[(next + i) % v.size()];
      if (c.instance != best || c.link->closed() || c.link->draining()) continue;
      next = (next + i + 1) % v.size();
      // Placed now: the next pick counts it before the replica's report arrives.
      for (auto& same : v) {
        if (same.instance == best) ++same.sessions_in_use;
      }
      return c.link;
    }
    return nullptr;
  }
  for (size_t i = 0; i < v.size(); ++i) {
    auto& c = v[(next + i) % v.size()];
    if (!c.link->closed() && !c.link->draining()) {
      next = (next + i + 1) % v.size();
      return c.link;
    }
  }
  return nullptr;
}

void ConnectorRegistry::set_load(const Key& key, const std::string& instance, uint32_t in_use,
                                 uint32_t limit) {
  auto it = live_.find(key);
  if (it == live_.end()) return;
  for (auto& c : it->second) {
    if (c.instance != instance) continue;
    c.sessions_in_use = in_use;
    c.max_sessions = limit;
  }
}

const std::vector<LiveConnection>* ConnectorRegistry::connections(const Key& key) const {
  auto it = live_.find(key);
  return it == live_.end() ? nullptr : &it->second;
}

size_t ConnectorRegistry::close_all(const Key& key, proto::ResetCode code,
                                    const std::string& reason) {
  auto it = live_.find(key);
  if (it == live_.end()) return 0;
  for (auto& c : it->second) c.link->shutdown(code, reason);
  return it->second.size();
}

std::vector<std::shared_ptr<Link>> ConnectorRegistry::all_links() const {
  std::vector<std::shared_ptr<Link>> out;
  for (const auto& [key, v] : live_) {
    for (const auto& c : v) out.push_back(c.link);
  }
  return out;
}

}  // namespace airlock::controlplane
