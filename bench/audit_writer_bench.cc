// audit_writer_bench: the audit log's CPU per record, by stage, with records shaped like the
// gateway's call records. Stages, each over the same records:
//   canonical   canonical_form() — the bytes a record's hash covers
//   seal        canonical form + SHA-256 + hex (what the writer does per record before SQLite)
//   append      AuditLog::append on the caller's thread (the request path's whole share), paced
//               at about 16,000 records/s as calls arrive
//   writer      the writer thread: seal, one row in audit.db, group commit (CPU of every thread
//               but the caller's, per record)
// Times are CPU time (CLOCK_THREAD_CPUTIME_ID / RUSAGE_SELF), steadier on a noisy machine than
// wall-clock rates.
// Usage: audit_writer_bench [RECORDS]   (default 100000)
#include <sys/resource.h>
#include <time.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "controlplane/audit_chain.h"
#include "controlplane/audit_log.h"

using namespace airlock::controlplane;
namespace asio = boost::asio;

namespace {

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double process_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

// A tools/call through a tunnel, as McpGateway records it.
AuditRecord call_record(size_t i) {
  AuditRecord r;
  r.at_ms = 1796000000000 + static_cast<int64_t>(i);
  r.type = AuditType::kCall;
  r.actor = "bench-agent";
  r.session = "5f1c0a9e3b7d";
  r.method = "tools/call";
  r.target = "tcp_echo";
  r.binding = "t";
  r.connector = "tunnel/bench";
  r.server = "fx";
  r.duration_ms = static_cast<int64_t>(i % 7);
  r.bytes_in = 96;
  r.bytes_out = 181;
  r.outcome = "ok";
  return r;
}

void row(const char* stage, double cpu_s, size_t n) {
  std::printf("| %s | %zu | %.2f |\n", stage, n, cpu_s * 1e6 / static_cast<double>(n));
}

}  // namespace

int main(int argc, char** argv) {
  const size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  std::vector<AuditRecord> records;
  records.reserve(n);
  for (size_t i = 0; i < n; ++i) records.push_back(call_record(i));

  std::printf("| stage | records | CPU µs per record |\n|---|---:|---:|\n");
  size_t bytes = 0;
  double t0 = thread_cpu_s();
  for (const auto& r : records) bytes += canonical_form(r).size();
  row("canonical", thread_cpu_s() - t0, n);

  std::string prev(kGenesisHash);
  t0 = thread_cpu_s();
  for (auto r : records) {
    seal(r, prev);
    prev = r.hash;
  }
  const double seal_s = thread_cpu_s() - t0;
  // (The copy each iteration makes is part of what the writer's batch costs too.)
  row("seal", seal_s, n);

  const auto dir = std::filesystem::temp_directory_path() /
                   ("airlock-audit-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    asio::io_context io;
    AuditConfig config;
    config.max_backlog = n + 1;
    AuditLog log(io.get_executor(), (dir / "audit.db").string(), config);
    const double p0 = process_cpu_s();
    t0 = thread_cpu_s();
    // Paced as calls arrive at about 16,000/s: 16 records, then a millisecond's pause.
    for (size_t i = 0; i < n; ++i) {
      log.append(std::move(records[i]));
      if (i % 16 == 15) {
        const double paused = thread_cpu_s();
        timespec ms{0, 1000000};
        nanosleep(&ms, nullptr);
        t0 += thread_cpu_s() - paused;
      }
    }
    const double append_s = thread_cpu_s() - t0;
    const double main0 = thread_cpu_s();
    asio::co_spawn(io, log.flush(), asio::detached);
    io.run();
    const double main_s = thread_cpu_s() - main0 + append_s;
    const double writer_s = process_cpu_s() - p0 - main_s;
    row("append", append_s, n);
    row("writer", writer_s, n);
    std::printf("\naverage canonical form: %zu bytes; written %llu, dropped %llu\n", bytes / n,
                static_cast<unsigned long long>(log.written()),
                static_cast<unsigned long long>(log.dropped()));
  }
  std::filesystem::remove_all(dir);
  return 0;
}
