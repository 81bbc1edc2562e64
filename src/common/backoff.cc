#include "common/backoff.h"

#include <algorithm>

namespace airlock {

Backoff::Backoff(BackoffPolicy policy, uint64_t seed) : policy_(policy), rng_(seed) {}

std::chrono::milliseconds Backoff::ceiling() const {
  // base * 2^attempt, without overflowing for large attempt counts.
  const int64_t base = policy_.base.count();
  const int64_t cap = policy_.cap.count();
  int64_t ceiling = base;
  for (uint32_t i = 0; i < attempt_ && ceiling < cap; ++i) ceiling *= 2;
  return std::chrono::milliseconds(std::min(ceiling, cap));
}

std::chrono::milliseconds Backoff::next_delay() {
  const auto top = ceiling();
  if (attempt_ < 64) ++attempt_;
  std::uniform_int_distribution<int64_t> pick(0, top.count());
  return std::chrono::milliseconds(pick(rng_));
}

void Backoff::on_disconnected(Clock::time_point now) {
  if (connected_at_ != Clock::time_point{} && now - connected_at_ >= policy_.stable) attempt_ = 0;
  connected_at_ = {};
}

}  // namespace airlock
