#include "common/backoff.h"

#include <gtest/gtest.h>

namespace airlock {
namespace {
using std::chrono::milliseconds;

TEST(Backoff, CeilingDoublesFromBaseUpToCap) {
  Backoff b({.base = milliseconds(1000), .cap = milliseconds(30000), .stable = milliseconds(60000)}, 1);
  const int64_t expected[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
  for (int64_t e : expected) {
    EXPECT_EQ(b.ceiling().count(), e);
    b.next_delay();
  }
}

TEST(Backoff, DelaysAreFullJitterWithinTheCeiling) {
  Backoff b({.base = milliseconds(1000), .cap = milliseconds(30000)}, 7);
  int64_t low = 1 << 30, high = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto ceiling = b.ceiling();
    const auto d = b.next_delay();
    ASSERT_GE(d.count(), 0);
    ASSERT_LE(d, ceiling);
    if (i > 10) {
      low = std::min(low, d.count());
      high = std::max(high, d.count());
    }
  }
  // Spread over the whole range, not clustered at the top (that would be "equal jitter").
  EXPECT_LT(low, 3000);
  EXPECT_GT(high, 27000);
}

TEST(Backoff, StableConnectionResetsTheAttempts) {
  Backoff b({.base = milliseconds(1000), .cap = milliseconds(30000), .stable = milliseconds(60000)}, 3);
  for (int i = 0; i < 6; ++i) b.next_delay();
  EXPECT_EQ(b.ceiling().count(), 30000);
  const auto t0 = Backoff::Clock::now();
  b.on_connected(t0);
  b.on_disconnected(t0 + std::chrono::seconds(5));  // flapping: keep backing off
  EXPECT_EQ(b.ceiling().count(), 30000);
  b.on_connected(t0);
  b.on_disconnected(t0 + std::chrono::seconds(61));  // stable: start over
  EXPECT_EQ(b.ceiling().count(), 1000);
}

TEST(Backoff, NoOverflowAfterManyAttempts) {
  Backoff b({.base = milliseconds(1000), .cap = milliseconds(30000)}, 5);
  for (int i = 0; i < 10000; ++i) ASSERT_LE(b.next_delay().count(), 30000);
}

}  // namespace
}  // namespace airlock
