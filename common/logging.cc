#include "common/logging.h"

#include "spdlog/sinks/stdout_sinks.h"

namespace ps {

void InitLogging(const std::string& role, const std::string& level) {
  auto logger = spdlog::stderr_logger_mt(role);
  logger->set_pattern("%H:%M:%S.%e %n %^%l%$: %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace ps
