#include "common/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>

#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>

namespace airlock {
namespace {

std::mutex g_redaction_mu;
std::function<std::shared_ptr<const redact::Patterns>()> g_redaction;

// stderr, one whole line per write, through the redactor when one is set.
class RedactingStderrSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    std::shared_ptr<const redact::Patterns> patterns;
    {
      std::lock_guard lock(g_redaction_mu);
      if (g_redaction) patterns = g_redaction();
    }
    if (patterns) {
      const std::string line = redact::redact(patterns, std::string_view(buf.data(), buf.size()));
      std::fwrite(line.data(), 1, line.size(), stderr);
    } else {
      std::fwrite(buf.data(), 1, buf.size(), stderr);
    }
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

void set_log_redaction(std::function<std::shared_ptr<const redact::Patterns>()> source) {
  std::lock_guard lock(g_redaction_mu);
  g_redaction = std::move(source);
}

void init_logging(std::string_view program, std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level '" + std::string(level) +
                                "' (use trace, debug, info, warn or error)");
  }
  auto logger = std::make_shared<spdlog::logger>(std::string(program),
                                                 std::make_shared<RedactingStderrSink>());
  logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      "%Y-%m-%dT%H:%M:%S.%eZ %l %n: %v", spdlog::pattern_time_type::utc));
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

void log_failure(std::exception_ptr e, std::string_view what) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("{} failed: {}", what, ex.what());
  } catch (...) {
    spdlog::error("{} failed", what);
  }
}

}  // namespace airlock
