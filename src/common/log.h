// Process-wide logging set-up on spdlog: one stderr logger per program. Call init_logging once
// from main(); spdlog's default logger is thread-safe afterwards.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace airlock {

// `level`: trace, debug, info, warn, error. Throws std::invalid_argument on anything else.
void init_logging(std::string_view program, std::string_view level);

}  // namespace airlock
