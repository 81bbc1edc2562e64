#include "controlplane/audit_log.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

#include "common/encoding.h"
#include "controlplane/sqlite_statement.h"
#include "controlplane/store.h"

namespace airlock::controlplane {
namespace json = boost::json;

namespace {

// Each record is stored once, as its fields in columns: the canonical form its hash covers is
// computed from them again when it is read, so that an edit to any column breaks the hash.
// (Logs written before this stored the canonical form itself in `record`, beside copies of
// the filter columns; those rows are read through it, and `record` is '' in newer ones.)
// Hashes are stored as their 32 bytes. One secondary index only, by type, and only of the
// records that are not calls (admin changes, refusals, relayed requests): each entry costs the
// writer a B-tree insert, and calls are nearly every record, so a query for calls finds them
// by reading back from the newest record, as other filters do, while the rare types are found
// through the index. (A query uses it when its WHERE has the index's own term.)
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY,
  at_ms INTEGER NOT NULL,
  type TEXT NOT NULL,
  actor TEXT NOT NULL,
  target TEXT NOT NULL,
  outcome TEXT NOT NULL,
  session TEXT NOT NULL,
  record TEXT NOT NULL,
  hash NOT NULL
);
DROP INDEX IF EXISTS audit_by_type;
CREATE INDEX IF NOT EXISTS audit_by_rare_type ON audit (type, seq) WHERE type <> 'call';
)sql";

// The columns of the first layout, in the order read_row() reads them.
constexpr const char* kFirstColumns[] = {"seq",     "at_ms",   "type",   "actor", "target",
                                         "outcome", "session", "record", "hash"};
// The columns added when records stopped being stored as their canonical form, read after
// those; added to an older log's table as it is opened.
constexpr std::pair<const char*, const char*> kFieldColumns[] = {
    {"method", "TEXT"},        {"binding", "TEXT"},      {"connector", "TEXT"},
    {"server", "TEXT"},        {"remote", "TEXT"},       {"duration_ms", "INTEGER"},
    {"bytes_in", "INTEGER"},   {"bytes_out", "INTEGER"}, {"error_class", "TEXT"},
    {"redactions", "INTEGER"}, {"detail", "TEXT"},       {"prev_hash", "BLOB"}};
constexpr size_t kColumnCount = std::size(kFirstColumns) + std::size(kFieldColumns);

// "seq, at_ms, …, prev_hash": every column, as SELECT and INSERT name them.
const std::string& columns() {
  static const std::string list = [] {
    std::string out;
    for (const char* c : kFirstColumns) out += std::string(out.empty() ? "" : ", ") + c;
    for (const auto& [c, type] : kFieldColumns) out += std::string(", ") + c;
    return out;
  }();
  return list;
}

void exec(sqlite3* db, const std::string& path, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error("audit database " + path + ": " + msg);
  }
}

void add_field_columns(sqlite3* db, const std::string& path) {
  std::set<std::string> have;
  Statement info(db, "PRAGMA table_info(audit)");
  while (info.step() == SQLITE_ROW) have.insert(info.text(1));
  for (const auto& [name, type] : kFieldColumns) {
    if (have.count(name)) continue;
    exec(db, path, (std::string("ALTER TABLE audit ADD COLUMN ") + name + " " + type).c_str());
  }
}

sqlite3* open_db(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw std::runtime_error("cannot open audit database " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

// A hash as stored: 32 bytes in rows written now, hex text in older ones (or in an edited one).
std::string hash_at(Statement& s, int col) {
  if (sqlite3_column_type(s.get(), col) == SQLITE_BLOB) {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(s.get(), col));
    return to_hex(std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(s.get(), col))));
  }
  return s.text(col);
}

// The 32 bytes of a 64-digit lowercase hex hash (as seal() makes them) into `out`. (Once per
// batch, for the head: each record's own digest comes from seal(), since decoding hex costs
// a mispredicted branch a digit.)
bool hash_bytes(std::string_view hex, Digest& out) {
  if (hex.size() != 64) return false;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < 32; ++i) {
    const int hi = digit(hex[2 * i]), lo = digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return true;
}

AuditRecord read_row(Statement& s) {
  AuditRecord r;
  const std::string record = s.text(7);
  if (!record.empty()) {
    // An older row: its canonical form, with the filter columns read back over it below.
    std::string error;
    if (!from_canonical(record, r, error)) {
      // Shown as what is left of it, and fails verification.
      r = AuditRecord{};
      r.detail = json::object{{"unreadable_record", record}, {"error", error}};
    }
  } else {
    r.method = s.text(9);
    r.binding = s.text(10);
    r.connector = s.text(11);
    r.server = s.text(12);
    r.remote = s.text(13);
    r.duration_ms = s.i64(14);
    r.bytes_in = static_cast<uint64_t>(s.i64(15));
    r.bytes_out = static_cast<uint64_t>(s.i64(16));  // stored as its two's complement bits
    r.error_class = s.text(17);
    r.redactions = static_cast<uint64_t>(s.i64(18));
    if (const std::string detail = s.text(19); !detail.empty()) {
      boost::system::error_code ec;
      auto v = json::parse(detail, ec);
      if (!ec && v.is_object()) {
        r.detail = std::move(v.as_object());
      } else {
        r.detail = json::object{{"unreadable_detail", detail}};  // and fails verification
      }
    }
    r.prev_hash = hash_at(s, 20);
  }
  r.seq = s.i64(0);
  r.hash = hash_at(s, 8);
  // What queries filter and show by: the stored columns.
  r.at_ms = s.i64(1);
  if (auto t = parse_audit_type(s.text(2))) {
    r.type = *t;
  } else {
    r.detail["stored_type"] = s.text(2);
    r.hash = "type '" + s.text(2) + "' unknown";
  }
  r.actor = s.text(3);
  r.target = s.text(4);
  r.outcome = s.text(5);
  r.session = s.text(6);
  return r;
}

// The record that starts a batch when records were lost since the one before: how many, and why.
AuditRecord gap_record(const AuditLog::Dropped& d) {
  AuditRecord gap;
  gap.type = AuditType::kGap;
  gap.at_ms = now_unix_ms();
  gap.outcome = "failed";
  gap.error_class = d.write_failed ? "write_failed" : "backlog_full";
  gap.detail = json::object{{"dropped", d.total()}};
  if (d.backlog_full) {
    gap.detail["backlog_full"] = d.backlog_full;
    gap.detail["reason"] = "the audit writer was more than audit.max_backlog records behind";
  }
  if (d.write_failed) {
    gap.detail["write_failed"] = d.write_failed;
    gap.detail[d.backlog_full ? "reason_write_failed" : "reason"] =
        "the audit database refused a write (airlockd's log names the error)";
  }
  return gap;
}

// Whether this thread could return from SCHED_IDLE to SCHED_BATCH: that needs CAP_SYS_NICE,
// or an RLIMIT_NICE that allows the thread's nice value (systemd's LimitNICE=+0 does).
bool may_leave_idle_class() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NICE, &limit) == 0) {
    const int nice = getpriority(PRIO_PROCESS, 0);
    if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= static_cast<rlim_t>(20 - nice)) {
      return true;
    }
  }
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    const uint64_t caps = std::strtoull(line.c_str() + 7, nullptr, 16);
    return caps & (uint64_t{1} << 23);  // CAP_SYS_NICE
  }
  return false;
}

}  // namespace

int writer_policy(size_t batch, bool records_lost, bool urgent, bool may_leave_idle) {
  const bool behind = batch >= AuditLog::kBatchTarget || records_lost || urgent;
  return may_leave_idle && !behind ? SCHED_IDLE : SCHED_BATCH;
}

void AuditLog::schedule_writer(int policy) {
  sched_param none{};
  if (policy != writer_class_ && pthread_setschedparam(writer_thread_, policy, &none) == 0) {
    writer_class_ = policy;
  }
}

AuditLog::AuditLog(asio::any_io_executor io, const std::string& path, AuditConfig config)
    : io_(io), path_(path), config_(std::move(config)) {
  writer_db_ = open_db(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
  try {
    // 16 KiB pages for a new database (an existing one keeps its own): the writer's cost is
    // mostly system calls, one or two per page it writes, and 4 KiB pages made 2.5 times as
    // many of them for the same records.
    exec(writer_db_, path_, "PRAGMA page_size=16384");
    exec(writer_db_, path_, "PRAGMA journal_mode=WAL");
    exec(writer_db_, path_, "PRAGMA synchronous=NORMAL");
    exec(writer_db_, path_, kSchema);
    add_field_columns(writer_db_, path_);
    ::chmod(path_.c_str(), 0600);
    Statement last(writer_db_, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
    if (last.step() == SQLITE_ROW) {
      head_ = {last.i64(0), hash_at(last, 1)};
    } else {
      head_ = {0, std::string(kGenesisHash)};
    }
    reader_db_ = open_db(path_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
    if (!config_.jsonl_file.empty()) {
      jsonl_fd_ =
          ::open(config_.jsonl_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
      if (jsonl_fd_ < 0) {
        throw std::runtime_error("cannot open audit.jsonl_file " + config_.jsonl_file + ": " +
                                 std::strerror(errno));
      }
    }
  } catch (...) {
    sqlite3_close(writer_db_);
    sqlite3_close(reader_db_);
    throw;
  }
  writer_ = std::thread([this] { writer_loop(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (writer_.joinable()) writer_.join();
  reader_.join();
  insert_.reset();
  sqlite3_close(writer_db_);
  sqlite3_close(reader_db_);
  if (jsonl_fd_ >= 0) ::close(jsonl_fd_);
}

void AuditLog::append(AuditRecord r) {
  if (r.at_ms == 0) r.at_ms = now_unix_ms();
  ++appended_;
  bool wake = false;
  {
    std::lock_guard lk(mu_);
    if (queue_.size() >= config_.max_backlog) {
      ++dropped_pending_.backlog_full;
      ++dropped_total_;
      return;
    }
    queue_.push_back(std::move(r));
    // Only a writer asleep on an empty queue needs waking (a system call); one that is
    // writing, or gathering a batch, takes this record with the others.
    wake = writer_asleep_ && queue_.size() == 1;
  }
  if (wake) cv_.notify_one();
}

uint64_t AuditLog::backlog() const {
  std::lock_guard lk(mu_);
  return queue_.size();
}

ChainHead AuditLog::head() const {
  std::lock_guard lk(mu_);
  return head_;
}

void AuditLog::writer_loop() {
  // Named, so that top -H and /proc/PID/task show what the audit log costs.
  pthread_setname_np(pthread_self(), "audit-writer");
  // Its scheduling class, chosen again for each batch (see writer_policy()); flush() may
  // raise it from another thread, so both change it under mu_.
  {
    std::lock_guard lk(mu_);
    writer_thread_ = pthread_self();
    may_leave_idle_ = may_leave_idle_class();
    schedule_writer(writer_policy(0, false, false, may_leave_idle_));
  }
  // Two buffers trade places: the writer hands its emptied one (its capacity kept) back as the
  // queue, so that appends do not allocate, and the records' strings are freed on this thread.
  std::vector<AuditRecord> batch;
  std::vector<std::string> canonical;  // reused: each keeps its buffer from batch to batch
  std::vector<Digest> digests;
  bool last_write_failed = false;
  batch.reserve(kBatchTarget);
  std::unique_lock lk(mu_);
  queue_.reserve(kBatchTarget);
  for (;;) {
    writer_asleep_ = true;
    cv_.wait(lk, [&] { return !queue_.empty() || dropped_pending_.total() || stopping_; });
    // Stopping: what is queued gets one attempt, a gap record for what was lost included.
    if (stopping_ && queue_.empty() && (!dropped_pending_.total() || last_write_failed)) return;
    // Group commit: a record that finds the writer idle waits up to kLinger for others to
    // join its batch, so that a steady stream of calls costs one transaction per batch rather
    // than one per record. (The request path never waits for this.)
    if (queue_.size() < kBatchTarget && !stopping_) {
      cv_.wait_for(lk, kLinger, [&] { return queue_.size() >= kBatchTarget || stopping_; });
    }
    writer_asleep_ = false;
    batch.swap(queue_);
    const Dropped dropped = dropped_pending_;
    dropped_pending_ = {};
    ChainHead head = head_;
    // Urgent: someone waits for it (a flush, or airlockd stopping), or it has not had a CPU
    // for a second (a machine busy with other work).
    const bool urgent = stopping_ || flushing_ > 0 ||
                        (!batch.empty() && now_unix_ms() - batch.front().at_ms > 1000);
    schedule_writer(writer_policy(batch.size(), dropped.total() > 0, urgent, may_leave_idle_));
    lk.unlock();

    if (dropped.total()) batch.insert(batch.begin(), gap_record(dropped));
    if (canonical.size() < batch.size()) canonical.resize(batch.size());
    digests.resize(batch.size());  // each record's SHA-256, as stored
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i].seq = ++head.seq;
      seal(batch[i], head.hash, canonical[i], digests[i]);
      head.hash = batch[i].hash;
    }
    const bool written = write_batch(batch, canonical, digests);
    last_write_failed = !written;
    const uint64_t records = batch.size() - (dropped.total() ? 1 : 0);
    batch.clear();
    lk.lock();
    if (written) {
      head_ = head;
      written_ += records;
    } else {
      // The chain stays where it was: the next record written is a gap record counting these
      // with any dropped since, so the log says what it lacks instead of skipping positions.
      dropped_pending_.backlog_full += dropped.backlog_full;
      dropped_pending_.write_failed += dropped.write_failed + records;
      dropped_total_ += records;
    }
    lk.unlock();
    asio::post(io_, [this] { on_written(); });
    lk.lock();
    // A database that refused a batch is not asked again at once (a busy one has already been
    // waited for, up to its busy timeout; a full disk would otherwise be tried in a loop).
    if (!written) cv_.wait_for(lk, kRetryAfterFailure, [&] { return stopping_; });
  }
}

bool AuditLog::write_batch(const std::vector<AuditRecord>& batch,
                           const std::vector<std::string>& canonical,
                           const std::vector<Digest>& digests) {
  // All or nothing: a batch that cannot be written is rolled back, logged and counted, and
  // its records are accounted for by the gap record that starts the next batch.
  try {
    exec(writer_db_, path_, "BEGIN IMMEDIATE");
    if (!insert_) {
      std::string sql = std::string("INSERT INTO audit (") + columns() + ") VALUES (?";
      for (size_t i = 1; i < kColumnCount; ++i) sql += ",?";
      insert_ = std::make_unique<Statement>(writer_db_, (sql + ")").c_str());
    }
    Statement& ins = *insert_;
    std::string detail;
    Digest before_batch{};
    for (size_t i = 0; i < batch.size(); ++i) {
      const AuditRecord& r = batch[i];
      detail = r.detail.empty() ? std::string() : json::serialize(r.detail);
      // Bound without copies: the batch, the hashes and `detail` outlive the step.
      sqlite3_reset(ins.get());
      ins.bind(1, r.seq).bind(2, r.at_ms).bind_unowned(3, to_string(r.type));
      ins.bind_unowned(4, r.actor).bind_unowned(5, r.target).bind_unowned(6, r.outcome);
      ins.bind_unowned(7, r.session).bind_unowned(8, std::string_view("", 0));  // not NULL
      ins.bind_unowned_blob(9, digests[i]).bind_unowned(10, r.method);
      ins.bind_unowned(11, r.binding);
      ins.bind_unowned(12, r.connector).bind_unowned(13, r.server).bind_unowned(14, r.remote);
      ins.bind(15, r.duration_ms).bind(16, static_cast<int64_t>(r.bytes_in));
      ins.bind(17, static_cast<int64_t>(r.bytes_out)).bind_unowned(18, r.error_class);
      ins.bind(19, static_cast<int64_t>(r.redactions)).bind_unowned(20, detail);
      // The hash before: the digest of the record before, which for the batch's first is the
      // head's (kept as text in the rare case that it is not one: an older log's edited row).
      if (i > 0) {
        ins.bind_unowned_blob(21, digests[i - 1]);
      } else if (hash_bytes(r.prev_hash, before_batch)) {
        ins.bind_unowned_blob(21, before_batch);
      } else {
        ins.bind_unowned(21, r.prev_hash);
      }
      if (ins.step() != SQLITE_DONE) {
        throw std::runtime_error(std::string("insert failed: ") + sqlite3_errmsg(writer_db_));
      }
    }
    exec(writer_db_, path_, "COMMIT");
  } catch (const std::exception& e) {
    sqlite3_exec(writer_db_, "ROLLBACK", nullptr, nullptr, nullptr);
    write_failures_ += batch.size();
    spdlog::error("audit log: {} record(s) not written to {}: {}", batch.size(), path_, e.what());
    return false;
  }
  // The sink carries what the log holds, so that its chain is the log's.
  if (jsonl_fd_ >= 0) write_jsonl(batch, canonical);
  return true;
}

void AuditLog::write_jsonl(const std::vector<AuditRecord>& batch,
                           const std::vector<std::string>& canonical) {
  // A shipper that rotated the file (renamed it away) gets a new one at the same path.
  struct stat by_path {
  }, by_fd{};
  if (::stat(config_.jsonl_file.c_str(), &by_path) != 0 || ::fstat(jsonl_fd_, &by_fd) != 0 ||
      by_path.st_ino != by_fd.st_ino || by_path.st_dev != by_fd.st_dev) {
    const int fd =
        ::open(config_.jsonl_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(jsonl_fd_);
      jsonl_fd_ = fd;
    } else {
      spdlog::error("audit log: cannot reopen {}: {}", config_.jsonl_file, std::strerror(errno));
    }
  }
  std::string out;
  for (size_t i = 0; i < batch.size(); ++i) {
    out += json_line(batch[i], canonical[i]);
    out += '\n';
  }
  size_t off = 0;
  while (off < out.size()) {
    const ssize_t n = ::write(jsonl_fd_, out.data() + off, out.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      spdlog::error("audit log: writing {} failed: {}", config_.jsonl_file, std::strerror(errno));
      return;
    }
    off += static_cast<size_t>(n);
  }
}

void AuditLog::on_written() {
  for (auto* t : waiters_) t->cancel();
}

asio::awaitable<void> AuditLog::flush(std::chrono::milliseconds timeout) {
  const uint64_t target = appended_;
  if (written_.load() + dropped_total_.load() >= target) co_return;
  {
    // Someone waits: the writer competes for a CPU until it has written what they wait for.
    std::lock_guard lk(mu_);
    ++flushing_;
    if (writer_class_ == SCHED_IDLE) schedule_writer(SCHED_BATCH);
  }
  const auto deadline = timeout == std::chrono::milliseconds::max()
                            ? asio::steady_timer::time_point::max()
                            : std::chrono::steady_clock::now() + timeout;
  asio::steady_timer t(io_, deadline);
  auto it = waiters_.insert(waiters_.end(), &t);
  while (written_.load() + dropped_total_.load() < target &&
         std::chrono::steady_clock::now() < deadline) {
    t.expires_at(deadline);
    auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
    if (written_.load() + dropped_total_.load() >= target) break;
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) break;
  }
  waiters_.erase(it);
  std::lock_guard lk(mu_);
  --flushing_;  // the writer goes back to idling with its next batch
}

asio::awaitable<void> AuditLog::wait_beyond(int64_t seq, std::chrono::milliseconds timeout) {
  if (head().seq > seq) co_return;
  asio::steady_timer t(io_, std::chrono::steady_clock::now() + timeout);
  auto it = waiters_.insert(waiters_.end(), &t);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (head().seq <= seq && std::chrono::steady_clock::now() < deadline) {
    t.expires_at(deadline);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) break;
  }
  waiters_.erase(it);
}

// Runs `work` on the reader thread; the caller resumes on its own executor with the result or
// the exception `work` threw. Plain callbacks rather than a coroutine on the reader thread, and
// every operation a named local: GCC 12 destroys temporaries in a co_await expression twice.
template <class T, class F>
asio::awaitable<T> AuditLog::on_reader(F work) {
  auto initiate = [this, work = std::move(work)](auto handler) mutable {
    asio::post(reader_, [work = std::move(work), handler = std::move(handler)]() mutable {
      std::exception_ptr error;
      T result{};
      try {
        result = work();
      } catch (...) {
        error = std::current_exception();
      }
      auto ex = asio::get_associated_executor(handler);
      asio::post(ex, [handler = std::move(handler), error, result = std::move(result)]() mutable {
        std::move(handler)(error, std::move(result));
      });
    });
  };
  auto op = asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, T)>(
      std::move(initiate), asio::use_awaitable);
  T out = co_await std::move(op);
  co_return out;
}

asio::awaitable<std::vector<AuditRecord>> AuditLog::query(AuditQuery q) {
  return on_reader<std::vector<AuditRecord>>([this, q = std::move(q)] { return run_query(q); });
}

asio::awaitable<ChainVerdict> AuditLog::verify() {
  return on_reader<ChainVerdict>([this] {
    // A window at a time, so that memory stays the same however long the log: each window
    // starts with the last two records of the one before, which its records must chain to.
    constexpr size_t kWindow = 8192, kContext = 2;
    const std::string sql = std::string("SELECT ") + columns() + " FROM audit ORDER BY seq";
    Statement s(reader_db_, sql.c_str());
    std::vector<AuditRecord> window;
    window.reserve(kWindow + kContext);
    size_t context = 0, records = 0;
    ChainVerdict v;
    int rc;
    bool more = true;
    while (more) {
      rc = s.step();
      more = rc == SQLITE_ROW;
      if (more) window.push_back(read_row(s));
      if (window.size() < kWindow + context && more) continue;
      if (!more && rc != SQLITE_DONE) {
        throw std::runtime_error(std::string("reading the audit log failed: ") +
                                 sqlite3_errmsg(reader_db_));
      }
      // The last window is checked against the writer's head too, read after the rows: the
      // writer only moves it forward, so every record it wrote that was read is at or below it.
      v = more ? verify_chain(window, std::nullopt, context)
               : verify_chain(window, head(), context);
      records += v.records;
      if (!v.intact) break;
      window.erase(window.begin(),
                   window.end() - static_cast<ptrdiff_t>(std::min(kContext, window.size())));
      context = window.size();
    }
    v.records = records;
    return v;
  });
}

std::vector<AuditRecord> AuditLog::run_query(const AuditQuery& q) {
  std::string sql = std::string("SELECT ") + columns() + " FROM audit WHERE 1=1";
  std::vector<std::pair<int, std::string>> texts;
  std::vector<std::pair<int, int64_t>> numbers;
  int n = 0;
  auto text_filter = [&](const char* column, const std::string& value) {
    if (value.empty()) return;
    sql += std::string(" AND ") + column + " = ?";
    texts.emplace_back(++n, value);
  };
  auto number_filter = [&](const char* clause, int64_t value) {
    if (value <= 0) return;
    sql += clause;
    numbers.emplace_back(++n, value);
  };
  text_filter("type", q.type);
  if (!q.type.empty() && q.type != "call") sql += " AND type <> 'call'";  // audit_by_rare_type
  text_filter("actor", q.actor);
  text_filter("target", q.target);
  text_filter("outcome", q.outcome);
  text_filter("session", q.session);
  number_filter(" AND seq < ?", q.before);
  number_filter(" AND seq > ?", q.after);
  number_filter(" AND at_ms >= ?", q.since_ms);
  number_filter(" AND at_ms <= ?", q.until_ms);
  sql += q.after > 0 || q.oldest_first ? " ORDER BY seq ASC" : " ORDER BY seq DESC";
  sql += " LIMIT " + std::to_string(std::min<size_t>(q.limit, 10000));
  Statement s(reader_db_, sql.c_str());
  for (const auto& [i, v] : texts) s.bind(i, v);
  for (const auto& [i, v] : numbers) s.bind(i, v);
  std::vector<AuditRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_row(s));
  if (rc != SQLITE_DONE) {
    throw std::runtime_error(std::string("audit query failed: ") + sqlite3_errmsg(reader_db_));
  }
  return out;
}

}  // namespace airlock::controlplane
