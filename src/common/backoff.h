// Reconnect delays: full-jitter exponential backoff (delay drawn uniformly from
// [0, min(cap, base * 2^attempt)]), reset once a connection has stayed up for a stable
// period. Sans-IO: the caller passes the clock readings and the random source. One instance
// per reconnect loop; not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace airlock {

struct BackoffPolicy {
  std::chrono::milliseconds base{1000};
  std::chrono::milliseconds cap{30000};
  std::chrono::milliseconds stable{60000};  // a connection this long-lived resets the attempts
};

class Backoff {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Backoff(BackoffPolicy policy, uint64_t seed = std::random_device{}());

  // The delay before the next attempt; each call counts one failed attempt.
  std::chrono::milliseconds next_delay();
  // The largest delay next_delay() may return now.
  std::chrono::milliseconds ceiling() const;

  void on_connected(Clock::time_point now) { connected_at_ = now; }
  // A connection ended; if it had been up for the stable period the attempts start over.
  void on_disconnected(Clock::time_point now);
  uint32_t attempts() const { return attempt_; }

 private:
  BackoffPolicy policy_;
  std::mt19937_64 rng_;
  uint32_t attempt_ = 0;
  Clock::time_point connected_at_{};
};

}  // namespace airlock
