// The audit log's chain (every kind of tampering named at the record it happened to) and the
// log itself: queued writes, queries, the gap record, the JSON Lines sink and its rotation.
#include <gtest/gtest.h>
#include <sched.h>
#include <sqlite3.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "controlplane/audit_chain.h"
#include "controlplane/audit_log.h"
#include "controlplane/store.h"
#include "test/e2e/temp_dir.h"

namespace airlock::controlplane {
namespace {
namespace json = boost::json;
using test::TempDir;

std::vector<AuditRecord> chain(int n) {
  std::vector<AuditRecord> out;
  std::string prev(kGenesisHash);
  for (int i = 1; i <= n; ++i) {
    AuditRecord r;
    r.seq = i;
    r.at_ms = 1764900000000 + i;
    r.type = i % 2 ? AuditType::kCall : AuditType::kAdmin;
    r.actor = "agent-" + std::to_string(i);
    r.target = "tool_" + std::to_string(i);
    r.outcome = "ok";
    r.bytes_in = 10u * i;
    r.detail = json::object{{"n", i}};
    seal(r, prev);
    prev = r.hash;
    out.push_back(r);
  }
  return out;
}

TEST(AuditChain, AnIntactChainVerifies) {
  auto v = verify_chain(chain(5));
  EXPECT_TRUE(v.intact) << v.message;
  EXPECT_EQ(v.records, 5u);
  EXPECT_EQ(v.head_seq, 5);
  EXPECT_EQ(verify_chain({}).head_hash, kGenesisHash);
  EXPECT_TRUE(verify_chain(chain(5), ChainHead{5, chain(5).back().hash}).intact);
}

TEST(AuditChain, AnEditedFieldIsNamed) {
  for (int field = 0; field < 4; ++field) {
    auto c = chain(6);
    switch (field) {
      case 0:
        c[2].actor = "someone-else";
        break;
      case 1:
        c[2].bytes_in = 1;
        break;
      case 2:
        c[2].detail["n"] = 99;
        break;
      case 3:
        c[2].at_ms += 1000;
        break;
    }
    auto v = verify_chain(c);
    EXPECT_FALSE(v.intact);
    EXPECT_EQ(v.problem, "edited") << field;
    EXPECT_EQ(v.bad_seq, 3) << field;
    EXPECT_NE(v.message.find("record 3 "), std::string::npos) << v.message;
  }
}

TEST(AuditChain, AnEditWithItsHashRecomputedIsNamed) {
  auto c = chain(6);
  c[3].outcome = "error";
  seal(c[3], c[3].prev_hash);  // the editor recomputed its own hash
  auto v = verify_chain(c);
  EXPECT_EQ(v.problem, "edited");
  EXPECT_EQ(v.bad_seq, 4);
}

TEST(AuditChain, ARemovedRecordIsNamed) {
  auto c = chain(6);
  c.erase(c.begin() + 2);  // record 3
  auto v = verify_chain(c);
  EXPECT_EQ(v.problem, "removed");
  EXPECT_EQ(v.bad_seq, 4);
  EXPECT_NE(v.message.find("record 3 before record 4"), std::string::npos) << v.message;

  auto first = chain(4);
  first.erase(first.begin());
  EXPECT_EQ(verify_chain(first).problem, "removed");
}

TEST(AuditChain, AnInsertedRecordIsNamed) {
  auto c = chain(6);
  AuditRecord forged;
  forged.at_ms = c[2].at_ms + 1;
  forged.actor = "intruder";
  seal(forged, c[2].hash);  // chains properly to record 3
  c.insert(c.begin() + 3, forged);
  for (size_t i = 3; i < c.size(); ++i) c[i].seq = static_cast<int64_t>(i) + 1;  // renumbered
  auto v = verify_chain(c);
  EXPECT_EQ(v.problem, "inserted");
  EXPECT_EQ(v.bad_seq, 4);
}

TEST(AuditChain, ReorderedRecordsAreNamed) {
  auto c = chain(6);
  std::swap(c[2], c[3]);
  std::swap(c[2].seq, c[3].seq);  // positions kept, contents swapped
  auto v = verify_chain(c);
  EXPECT_EQ(v.problem, "reordered");
  EXPECT_EQ(v.bad_seq, 3);
}

TEST(AuditChain, TheWritersHeadCatchesATruncatedOrExtendedTail) {
  auto c = chain(6);
  const ChainHead head{6, c.back().hash};
  auto cut = c;
  cut.pop_back();
  auto v = verify_chain(cut, head);
  EXPECT_EQ(v.problem, "truncated");
  EXPECT_EQ(v.bad_seq, 6);

  auto longer = chain(7);  // a well-formed record 7 airlockd never wrote
  v = verify_chain(longer, head);
  EXPECT_EQ(v.problem, "inserted");
  EXPECT_EQ(v.bad_seq, 7);
}

TEST(AuditChain, JsonRoundTripsAndKeepsTheHash) {
  for (const auto& r : chain(3)) {
    const std::string text = json::serialize(to_json(r));
    AuditRecord back;
    std::string error;
    ASSERT_TRUE(from_json(json::parse(text).as_object(), back, error)) << error;
    EXPECT_EQ(back.seq, r.seq);
    EXPECT_EQ(compute_hash(back), r.hash);
  }
  AuditRecord out;
  std::string error;
  EXPECT_FALSE(from_json(json::object{{"seq", 1}}, out, error));
  EXPECT_EQ(error, "hash must be a string");
  auto o = to_json(chain(1)[0]);
  o["type"] = "nonsense";
  EXPECT_FALSE(from_json(o, out, error));
  EXPECT_NE(error.find("nonsense"), std::string::npos);
}

// Logs already written must still verify: the canonical form is a stored contract.
TEST(AuditChain, AWindowAtATimeGivesTheSameVerdict) {
  auto c = chain(12);
  // Windows of 5 records, each after the first starting with the last two of the one before.
  auto windows = [&](const std::vector<AuditRecord>& all) {
    ChainVerdict v;
    size_t records = 0;
    for (size_t start = 0; start < all.size(); start += 5) {
      const size_t context = start ? 2 : 0;
      std::vector<AuditRecord> w(
          all.begin() + static_cast<ptrdiff_t>(start - context),
          all.begin() + static_cast<ptrdiff_t>(std::min(start + 5, all.size())));
      v = verify_chain(w, std::nullopt, context);
      records += v.records;
      if (!v.intact) break;
    }
    v.records = records;
    return v;
  };
  auto v = windows(c);
  EXPECT_TRUE(v.intact) << v.message;
  EXPECT_EQ(v.records, 12u);
  EXPECT_EQ(v.head_seq, 12);
  // A record removed where a window starts, and one edited inside a later window.
  auto removed = c;
  removed.erase(removed.begin() + 5);  // seq 6, the second window's first record
  v = windows(removed);
  EXPECT_EQ(v.problem, "removed");
  EXPECT_EQ(v.bad_seq, 7);
  auto edited = c;
  edited[10].target = "other";
  v = windows(edited);
  EXPECT_EQ(v.problem, "edited");
  EXPECT_EQ(v.bad_seq, 11);
  // The first record of a window must chain to the context, not merely to itself.
  auto swapped = c;
  std::swap(swapped[4], swapped[5]);
  std::swap(swapped[4].seq, swapped[5].seq);
  v = windows(swapped);
  EXPECT_FALSE(v.intact);
}

TEST(AuditChain, TheCanonicalFormIsStable) {
  AuditRecord r;
  r.at_ms = 1764900000123;
  r.type = AuditType::kCall;
  r.actor = "agent-1";
  r.session = "5f1c0a9e3b7d";
  r.method = "tools/call";
  r.target = "tcp_echo";
  r.binding = "t";
  r.connector = "tunnel/bench";
  r.server = "fx";
  r.remote = "127.0.0.1:5000";
  r.duration_ms = 12;
  r.bytes_in = 96;
  r.bytes_out = 18446744073709551615u;
  r.outcome = "tool_error";
  r.error_class = "timeout";
  r.redactions = 2;
  r.detail = json::object{{"n", -3}, {"why", "a \"quoted\" word"}};
  seal(r, kGenesisHash);
  EXPECT_EQ(canonical_form(r),
            R"({"at":"2025-12-05T02:00:00.123Z","type":"call","actor":"agent-1",)"
            R"("session":"5f1c0a9e3b7d","method":"tools/call","target":"tcp_echo","binding":"t",)"
            R"("connector":"tunnel/bench","server":"fx","remote":"127.0.0.1:5000",)"
            R"("duration_ms":12,"bytes_in":96,"bytes_out":18446744073709551615,)"
            R"("outcome":"tool_error","error_class":"timeout","redactions":2,)"
            R"("detail":{"n":-3,"why":"a \"quoted\" word"},)"
            R"("prev_hash":"0000000000000000000000000000000000000000000000000000000000000000"})");
  EXPECT_EQ(r.hash, "5b1e2840622d3550e634ac20a77283b6eb515b1bb5b36780f5f0c29fe87c9abe");

  // Every byte in every string field is escaped as Boost.JSON escapes it.
  std::string every;
  for (int c = 0; c < 256; ++c) every += static_cast<char>(c);
  for (std::string s : {every, std::string("\\\"\x7f\xe2\x80\xa8 </script>"), std::string()}) {
    AuditRecord x = r;
    x.actor = x.session = x.method = x.target = x.binding = x.connector = x.server = x.remote =
        x.outcome = x.error_class = x.prev_hash = s;
    x.detail = json::object{{s, s}};
    const json::object expected{{"at", format_time_ms(x.at_ms)},
                                {"type", "call"},
                                {"actor", s},
                                {"session", s},
                                {"method", s},
                                {"target", s},
                                {"binding", s},
                                {"connector", s},
                                {"server", s},
                                {"remote", s},
                                {"duration_ms", 12},
                                {"bytes_in", 96},
                                {"bytes_out", x.bytes_out},
                                {"outcome", s},
                                {"error_class", s},
                                {"redactions", 2},
                                {"detail", x.detail},
                                {"prev_hash", s}};
    EXPECT_EQ(canonical_form(x), json::serialize(expected));
  }
}

TEST(AuditChain, TimesRoundTrip) {
  EXPECT_EQ(parse_time_ms(format_time_ms(1764900000123)), 1764900000123);
  EXPECT_FALSE(parse_time_ms("2026-13-01"));
  EXPECT_FALSE(parse_time_ms("2026-11-27T14:08:21.123"));
}

// ---- the log ----------------------------------------------------------------------------------

template <class T>
T run(asio::io_context& io, asio::awaitable<T> a) {
  auto f = asio::co_spawn(io, std::move(a), asio::use_future);
  io.restart();
  while (f.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) io.run_one();
  return f.get();
}

AuditRecord call(const std::string& actor, const std::string& tool) {
  AuditRecord r;
  r.type = AuditType::kCall;
  r.actor = actor;
  r.target = tool;
  r.outcome = "ok";
  return r;
}

TEST(AuditLog, WritesChainsQueriesAndVerifies) {
  TempDir dir;
  asio::io_context io;
  const std::string path = dir.path + "/audit.db";
  {
    AuditConfig config;
    config.jsonl_file = dir.path + "/audit.jsonl";
    AuditLog log(io.get_executor(), path, config);
    for (int i = 0; i < 50; ++i) log.append(call(i % 2 ? "a" : "b", "t" + std::to_string(i)));
    run(io, log.flush());
    EXPECT_EQ(log.written(), 50u);
    EXPECT_EQ(log.head().seq, 50);

    AuditQuery q;
    q.actor = "a";
    q.limit = 10;
    auto page = run(io, log.query(q));
    ASSERT_EQ(page.size(), 10u);
    EXPECT_EQ(page.front().seq, 50);  // newest first
    for (const auto& r : page) EXPECT_EQ(r.actor, "a");
    q.before = page.back().seq;
    auto next = run(io, log.query(q));
    EXPECT_LT(next.front().seq, page.back().seq);

    AuditQuery after;
    after.after = 45;
    auto tail = run(io, log.query(after));
    ASSERT_EQ(tail.size(), 5u);
    EXPECT_EQ(tail.front().seq, 46);  // oldest first

    auto v = run(io, log.verify());
    EXPECT_TRUE(v.intact) << v.message;
    EXPECT_EQ(v.records, 50u);
  }
  {
    // Reopened, the chain continues from its head.
    AuditLog log(io.get_executor(), path, AuditConfig{});
    EXPECT_EQ(log.head().seq, 50);
    log.append(call("c", "t"));
    run(io, log.flush());
    EXPECT_TRUE(run(io, log.verify()).intact);
  }
  // The JSON Lines sink holds the same records, verifiable on their own.
  std::ifstream in(dir.path + "/audit.jsonl");
  std::vector<AuditRecord> lines;
  for (std::string line; std::getline(in, line);) {
    AuditRecord r;
    std::string error;
    ASSERT_TRUE(from_json(json::parse(line).as_object(), r, error)) << error;
    lines.push_back(r);
  }
  ASSERT_EQ(lines.size(), 50u);
  EXPECT_TRUE(verify_chain(lines).intact);
}

// A log of `n` calls, written, with sqlite3 at hand to change it behind its back.
class WrittenLog : public ::testing::Test {
 protected:
  void write(int n) {
    for (int i = 0; i < n; ++i) log.append(call("a", "t" + std::to_string(i)));
    run(io, log.flush());
  }
  int sql(const std::string& statement) {
    return std::system(("sqlite3 " + path + " \"" + statement + "\"").c_str());
  }
  TempDir dir;
  asio::io_context io;
  const std::string path = dir.path + "/audit.db";
  AuditLog log{io.get_executor(), path, AuditConfig{}};
};

TEST_F(WrittenLog, AnEditBehindItsBackIsNamed) {
  write(20);
  const std::string cmd = "sqlite3 " + path + " \"UPDATE audit SET outcome='error' WHERE seq=7\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto v = run(io, log.verify());
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.problem, "edited");
  EXPECT_EQ(v.bad_seq, 7);
  ASSERT_EQ(sql("UPDATE audit SET outcome='ok' WHERE seq=7"), 0);
  EXPECT_TRUE(run(io, log.verify()).intact);
  // Every field is a column the hash covers: numbers, names, the detail, the hash before.
  const std::pair<const char*, const char*> edits[] = {
      {"bytes_in=bytes_in+1", "bytes_in=bytes_in-1"},
      {"duration_ms=duration_ms+1", "duration_ms=duration_ms-1"},
      {"connector=connector||'x'", "connector=substr(connector,1,length(connector)-1)"},
      {"detail='{\\\"n\\\":1}'", "detail=''"},
      {"prev_hash=hash", "prev_hash=(SELECT hash FROM audit WHERE seq=8)"},
      {"record='{}'", "record=''"}};
  for (const auto& [edit, undo] : edits) {
    SCOPED_TRACE(edit);
    ASSERT_EQ(sql(std::string("UPDATE audit SET ") + edit + " WHERE seq=9"), 0);
    v = run(io, log.verify());
    EXPECT_FALSE(v.intact);
    EXPECT_EQ(v.bad_seq, 9);
    ASSERT_EQ(sql(std::string("UPDATE audit SET ") + undo + " WHERE seq=9"), 0);
    EXPECT_TRUE(run(io, log.verify()).intact);
  }
  const std::string del = "sqlite3 " + path + " \"DELETE FROM audit WHERE seq=20\"";
  ASSERT_EQ(std::system(del.c_str()), 0);
  v = run(io, log.verify());
  EXPECT_EQ(v.problem, "truncated");
  EXPECT_EQ(v.bad_seq, 20);
}

// A log written before records were stored as columns (each row its canonical form in
// `record`, hashes as hex, no field columns) is read, extended and verified as one chain, and
// an edit to an old row is still named.
TEST(AuditLog, ALogInTheEarlierLayoutIsReadAndExtended) {
  TempDir dir;
  const std::string path = dir.path + "/audit.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    std::unique_ptr<sqlite3, int (*)(sqlite3*)> owner(db, sqlite3_close);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE audit (seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, "
                           "type TEXT NOT NULL, actor TEXT NOT NULL, target TEXT NOT NULL, "
                           "outcome TEXT NOT NULL, session TEXT NOT NULL, record TEXT NOT NULL, "
                           "hash TEXT NOT NULL)",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    for (const auto& r : chain(5)) {
      sqlite3_stmt* st = nullptr;
      ASSERT_EQ(
          sqlite3_prepare_v2(db, "INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?)", -1, &st, nullptr),
          SQLITE_OK);
      const std::string type(to_string(r.type)), canonical = canonical_form(r);
      sqlite3_bind_int64(st, 1, r.seq);
      sqlite3_bind_int64(st, 2, r.at_ms);
      int i = 3;
      for (const std::string* t :
           {&type, &r.actor, &r.target, &r.outcome, &r.session, &canonical, &r.hash}) {
        sqlite3_bind_text(st, i++, t->c_str(), -1, SQLITE_TRANSIENT);
      }
      EXPECT_EQ(sqlite3_step(st), SQLITE_DONE);
      sqlite3_finalize(st);
    }
  }
  asio::io_context io;
  AuditLog log(io.get_executor(), path, AuditConfig{});
  EXPECT_EQ(log.head().seq, 5);
  log.append(call("a", "after"));
  run(io, log.flush());
  auto v = run(io, log.verify());
  EXPECT_TRUE(v.intact) << v.message;
  EXPECT_EQ(v.records, 6u);
  AuditQuery q;
  q.oldest_first = true;
  auto all = run(io, log.query(q));
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all[1].bytes_in, 20u);  // from the old row's canonical form
  EXPECT_EQ(all[1].detail.at("n").to_number<int>(), 2);
  EXPECT_EQ(all[5].target, "after");
  EXPECT_EQ(all[5].prev_hash, all[4].hash);
  const std::string edit = "sqlite3 " + path +
                           " \"UPDATE audit SET record=replace(record,'\\\"bytes_in\\\":30',"
                           "'\\\"bytes_in\\\":31') WHERE seq=3\"";
  ASSERT_EQ(std::system(edit.c_str()), 0);
  v = run(io, log.verify());
  EXPECT_EQ(v.problem, "edited");
  EXPECT_EQ(v.bad_seq, 3);
}

// verify() reads the log a window of 8,192 records at a time: a log of three windows is
// intact as a whole, and a record edited in the last window, or removed where the second
// begins, is named as in a short log.
TEST_F(WrittenLog, ALogLongerThanAWindowVerifiesAndNamesTheRecord) {
  write(20000);
  auto v = run(io, log.verify());
  EXPECT_TRUE(v.intact) << v.message;
  EXPECT_EQ(v.records, 20000u);
  EXPECT_EQ(v.head_seq, 20000);
  ASSERT_EQ(sql("UPDATE audit SET outcome='error' WHERE seq=19000"), 0);
  v = run(io, log.verify());
  EXPECT_EQ(v.problem, "edited");
  EXPECT_EQ(v.bad_seq, 19000);
  ASSERT_EQ(sql("UPDATE audit SET outcome='ok' WHERE seq=19000"), 0);
  ASSERT_EQ(sql("DELETE FROM audit WHERE seq=8193"), 0);
  v = run(io, log.verify());
  EXPECT_EQ(v.problem, "removed");
  EXPECT_EQ(v.bad_seq, 8194);
}

TEST_F(WrittenLog, ABatchTheDatabaseRefusesIsCountedByTheNextGapRecord) {
  write(3);
  sqlite3* db = nullptr;
  const int opened = sqlite3_open(path.c_str(), &db);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> lock(db, sqlite3_close);
  ASSERT_EQ(opened, SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  for (int i = 0; i < 5; ++i) log.append(call("a", "refused"));
  run(io, log.flush());  // once the writer has given up on them (its busy timeout)
  EXPECT_EQ(log.dropped(), 5u);
  EXPECT_GE(log.write_failures(), 5u);
  EXPECT_EQ(log.head().seq, 3) << "the chain advanced past records that were not written";
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  lock.reset();
  write(1);
  AuditQuery q;
  q.type = "gap";
  auto gaps = run(io, log.query(q));
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0].seq, 4);
  EXPECT_EQ(gaps[0].error_class, "write_failed");
  EXPECT_EQ(gaps[0].detail.at("dropped").to_number<uint64_t>(), 5u);
  EXPECT_EQ(gaps[0].detail.at("write_failed").to_number<uint64_t>(), 5u);
  EXPECT_EQ(log.head().seq, 5);
  EXPECT_EQ(log.written(), 4u);
  auto v = run(io, log.verify());
  EXPECT_TRUE(v.intact) << v.problem << " at " << v.bad_seq;
}

TEST(AuditLog, AFullBacklogDropsAndSaysSo) {
  TempDir dir;
  asio::io_context io;
  AuditConfig config;
  config.max_backlog = 100;
  AuditLog log(io.get_executor(), dir.path + "/audit.db", config);
  // Faster than any disk: most of these find the queue full.
  for (int i = 0; i < 20000; ++i) log.append(call("a", "t"));
  run(io, log.flush());
  EXPECT_EQ(log.written() + log.dropped(), 20000u);
  if (log.dropped() == 0) GTEST_SKIP() << "the writer kept up with 20000 appends";
  AuditQuery q;
  q.type = "gap";
  auto gaps = run(io, log.query(q));
  ASSERT_FALSE(gaps.empty());
  uint64_t counted = 0;
  for (const auto& g : gaps) counted += g.detail.at("dropped").to_number<uint64_t>();
  EXPECT_EQ(counted, log.dropped());
  EXPECT_TRUE(run(io, log.verify()).intact);
}

// The writer runs as SCHED_IDLE while it keeps up, so that it only takes a CPU no request
// wants, and as SCHED_BATCH once it falls behind, so that it cannot be starved into dropping.
TEST(AuditLog, TheWriterYieldsTheCpuWhileItKeepsUpOnly) {
  EXPECT_EQ(writer_policy(10, false, false, true), SCHED_IDLE);
  EXPECT_EQ(writer_policy(AuditLog::kBatchTarget, false, false, true), SCHED_BATCH);
  EXPECT_EQ(writer_policy(10, true, false, true), SCHED_BATCH);
  EXPECT_EQ(writer_policy(10, false, true, true), SCHED_BATCH);  // urgent
  EXPECT_EQ(writer_policy(10, false, false, false), SCHED_BATCH);  // could not come back
  TempDir dir;
  asio::io_context io;
  AuditLog log(io.get_executor(), dir.path + "/audit.db", AuditConfig{});
  for (int i = 0; i < 20000; ++i) log.append(call("a", "t"));
  run(io, log.flush());
  log.append(call("a", "last"));
  run(io, log.flush());
  EXPECT_EQ(log.written(), 20001u);
  EXPECT_EQ(log.dropped(), 0u);
  pid_t writer = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name) && name == "audit-writer") {
      writer = static_cast<pid_t>(std::stol(task.path().filename().string()));
    }
  }
  ASSERT_NE(writer, 0) << "no thread named audit-writer";
  // The tests run as root (CAP_SYS_NICE), so the writer may idle: after a one-record batch it is
  // (the flush that waited for it has ended).
  log.append(call("a", "idle"));
  for (int i = 0; i < 500 && log.written() < 20002u; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(sched_getscheduler(writer), SCHED_IDLE);
  // A record that waited more than a second (the writer had no CPU) makes it compete, until
  // a batch of fresh records lets it idle again.
  auto wait_written = [&](uint64_t n) {
    for (int i = 0; i < 500 && log.written() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(log.written(), n);
  };
  AuditRecord old = call("a", "old");
  old.at_ms = now_unix_ms() - 5000;
  log.append(old);
  wait_written(20003u);
  EXPECT_EQ(sched_getscheduler(writer), SCHED_BATCH);
  log.append(call("a", "fresh"));
  wait_written(20004u);
  EXPECT_EQ(sched_getscheduler(writer), SCHED_IDLE);
  // A flush makes it compete for a CPU while it waits (seen while one is still waiting: the
  // writer lingers 20 ms for a batch to gather, so the first try nearly always is).
  int seen_waiting = 0;
  for (int attempt = 0; attempt < 5 && !seen_waiting; ++attempt) {
    log.append(call("a", "flushed"));
    auto waiting = asio::co_spawn(io, log.flush(), asio::use_future);
    io.restart();
    io.poll();
    if (waiting.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
      ++seen_waiting;
      EXPECT_EQ(sched_getscheduler(writer), SCHED_BATCH);
    }
    while (waiting.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
      io.run_one();
    }
  }
  EXPECT_EQ(seen_waiting, 1) << "every flush had finished before it could be looked at";
  EXPECT_EQ(log.dropped(), 0u);
}

TEST(AuditLog, TheJsonLinesFileFollowsRotation) {
  TempDir dir;
  asio::io_context io;
  AuditConfig config;
  config.jsonl_file = dir.path + "/audit.jsonl";
  AuditLog log(io.get_executor(), dir.path + "/audit.db", config);
  log.append(call("a", "before"));
  run(io, log.flush());
  std::filesystem::rename(config.jsonl_file, config.jsonl_file + ".1");
  log.append(call("a", "after"));
  run(io, log.flush());
  std::ifstream fresh(config.jsonl_file);
  std::string line;
  ASSERT_TRUE(std::getline(fresh, line));
  EXPECT_NE(line.find("\"after\""), std::string::npos);
  std::ifstream old(config.jsonl_file + ".1");
  ASSERT_TRUE(std::getline(old, line));
  EXPECT_NE(line.find("\"before\""), std::string::npos);
}

TEST(AuditLog, AnUnopenableSinkFailsAtStart) {
  TempDir dir;
  asio::io_context io;
  AuditConfig config;
  config.jsonl_file = dir.path + "/no/such/dir/audit.jsonl";
  try {
    AuditLog log(io.get_executor(), dir.path + "/audit.db", config);
    FAIL() << "opened";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("audit.jsonl_file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace airlock::controlplane
