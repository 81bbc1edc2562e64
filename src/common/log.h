// Process-wide logging set-up on spdlog: one stderr logger per program. Call init_logging once
// from main(); spdlog's default logger is thread-safe afterwards.
#pragma once

#include <spdlog/spdlog.h>

#include <exception>
#include <functional>
#include <memory>
#include <string_view>

#include "common/redactor.h"

namespace airlock {

// `level`: trace, debug, info, warn, error. Throws std::invalid_argument on anything else.
void init_logging(std::string_view program, std::string_view level);

// Connectors: every log line passes this redactor before it is written (a private server's
// stderr, forwarded into the log, may print a secret). Thread-safe; `source` is asked for
// the current set on every line and must be thread-safe itself.
void set_log_redaction(std::function<std::shared_ptr<const redact::Patterns>()> source);

// The completion of a co_spawn that must not end silently: logs "WHAT failed: REASON" when
// `e` holds an exception.
void log_failure(std::exception_ptr e, std::string_view what);

}  // namespace airlock
