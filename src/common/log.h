// Process-wide logging set-up on spdlog: one stderr logger per program. Call init_logging once
// from main(); spdlog's default logger is thread-safe afterwards.
#pragma once

#include <spdlog/spdlog.h>

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

}  // namespace airlock
