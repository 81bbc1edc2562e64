// AuditLog: airlockd's tamper-evident record of every agent call, admin change and refused
// authentication, in state_dir/audit.db (SQLite, WAL) and optionally a JSON Lines file for a
// log shipper. Records form a hash chain (audit_chain.h).
//
// Writing never blocks the request path: append() only queues, under a mutex held for a push.
// A writer thread of the log's own seals the queued records into the chain and writes them in
// one transaction per batch. Queries and verification run on a reader thread with a
// connection of their own and complete on the caller's executor.
// Owned by ControlPlane; append(), head() and the awaitables are called on airlockd's io thread.
#pragma once

#include <pthread.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controlplane/audit_chain.h"
#include "controlplane/config.h"

struct sqlite3;

namespace airlock::controlplane {
class Statement;
}

namespace airlock::controlplane {
namespace asio = boost::asio;

struct AuditQuery {
  int64_t before = 0;         // newest first, records before this seq (0: from the newest)
  int64_t after = 0;          // records after this seq (for following the log)
  bool oldest_first = false;  // ascending seq (always so with `after`)
  std::string type, actor, target, outcome, session;
  int64_t since_ms = 0, until_ms = 0;  // at_ms range, inclusive; 0: open
  size_t limit = 100;
};

class AuditLog {
 public:
  // Opens (creating) the database at `path` and finds the chain's head. Throws
  // std::runtime_error naming the file.
  AuditLog(asio::any_io_executor io, const std::string& path, AuditConfig config);
  // Writes everything queued, then stops the threads.
  ~AuditLog();

  // Queues `r` (at_ms is set now when 0). Never waits for the disk. When the writer is more
  // than max_backlog records behind, `r` is counted as dropped instead, and the next batch
  // starts with a `gap` record saying how many were.
  void append(AuditRecord r);

  // Completes once everything appended before the call is written (or dropped), or after
  // `timeout`. The writer competes for a CPU while someone waits. Cancelling it stops the
  // wait only.
  asio::awaitable<void> flush(std::chrono::milliseconds timeout = std::chrono::milliseconds::max());
  // Completes when a record after `seq` is written, or after `timeout`. Cancelling it stops the
  // wait only.
  asio::awaitable<void> wait_beyond(int64_t seq, std::chrono::milliseconds timeout);

  // Reads records on the reader thread; throws std::runtime_error with SQLite's message.
  asio::awaitable<std::vector<AuditRecord>> query(AuditQuery q);
  // Reads the whole log on the reader thread and checks its chain against the writer's head.
  asio::awaitable<ChainVerdict> verify();

  ChainHead head() const;
  uint64_t appended() const { return appended_; }
  uint64_t written() const { return written_.load(); }
  uint64_t dropped() const { return dropped_total_.load(); }
  uint64_t backlog() const;
  uint64_t write_failures() const { return write_failures_.load(); }
  const std::string& path() const { return path_; }

  // A batch this large means the writer is behind (the queue filled it while the writer
  // lingered or wrote).
  static constexpr size_t kBatchTarget = 1024;

  // Records lost between two written ones, by cause: the queue was full, or their batch could
  // not be written.
  struct Dropped {
    uint64_t backlog_full = 0, write_failed = 0;
    uint64_t total() const { return backlog_full + write_failed; }
  };

 private:
  void writer_loop();
  // `canonical[i]`: the form batch[i]'s hash covers, as seal() returned it.
  // True when the batch was committed; false (logged, counted) when it was rolled back.
  // `digests[i]`: batch[i]'s SHA-256, as seal() gave it.
  bool write_batch(const std::vector<AuditRecord>& batch, const std::vector<std::string>& canonical,
                   const std::vector<Digest>& digests);
  void write_jsonl(const std::vector<AuditRecord>& batch,
                   const std::vector<std::string>& canonical);
  void on_written();  // on the io thread
  template <class T, class F>
  asio::awaitable<T> on_reader(F work);
  std::vector<AuditRecord> run_query(const AuditQuery& q);

  asio::any_io_executor io_;
  std::string path_;
  AuditConfig config_;
  sqlite3* writer_db_ = nullptr;
  sqlite3* reader_db_ = nullptr;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<AuditRecord> queue_;
  Dropped dropped_pending_;  // since the last gap record written
  bool stopping_ = false;
  bool writer_asleep_ = false;  // waiting on an empty queue: an append must wake it
  // The writer's scheduling class, changed by it and by flush(): under mu_.
  void schedule_writer(int policy);
  pthread_t writer_thread_{};
  int writer_class_ = -1;
  bool may_leave_idle_ = false;
  int flushing_ = 0;  // flush() calls waiting
  ChainHead head_;              // under mu_

  static constexpr auto kLinger = std::chrono::milliseconds(20);
  static constexpr auto kRetryAfterFailure = std::chrono::seconds(1);

  uint64_t appended_ = 0;  // io thread
  std::atomic<uint64_t> written_{0}, dropped_total_{0}, write_failures_{0};
  std::atomic<uint64_t> queued_{0};
  int jsonl_fd_ = -1;                  // writer thread
  std::unique_ptr<Statement> insert_;  // writer thread: prepared once

  std::list<asio::steady_timer*> waiters_;  // io thread: woken by on_written()
  asio::thread_pool reader_{1};
  std::thread writer_;
};

// The audit writer's scheduling class for a batch of `batch` records: SCHED_IDLE — it runs
// only on a CPU that no request thread wants — while it keeps up, and SCHED_BATCH (an ordinary
// share, without preempting on wake-up) once it falls behind: a batch of kBatchTarget or more,
// records lost, or `urgent` (someone flushing, airlockd stopping, a record a second old).
// Only SCHED_BATCH when the thread could not come back from SCHED_IDLE (no CAP_SYS_NICE, and
// RLIMIT_NICE below the thread's nice value).
int writer_policy(size_t batch, bool records_lost, bool urgent, bool may_leave_idle);

}  // namespace airlock::controlplane
