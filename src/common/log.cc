#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <stdexcept>
#include <string>

namespace airlock {

void init_logging(std::string_view program, std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level '" + std::string(level) +
                                "' (use trace, debug, info, warn or error)");
  }
  auto logger = spdlog::stderr_logger_mt(std::string(program));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %n: %v", spdlog::pattern_time_type::utc);
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace airlock
