#include "common/logging.h"

#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/audit.h"
#include "common/sync.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"

ABSL_FLAG(std::string, log_format, "text",
          "text (a line per event) or json (a JSON object per line, for log shippers)");

namespace ps {
namespace {

Mutex id_mu;
std::string* log_id ABSL_GUARDED_BY(id_mu) = nullptr;

// `s` as the inside of a JSON string (common/audit.h's JsonQuote without
// the quotes; bytes that are not UTF-8 become U+FFFD).
void AppendJsonEscaped(std::string_view s, spdlog::memory_buf_t& dest) {
  const std::string quoted = JsonQuote(s);
  dest.append(quoted.data() + 1, quoted.data() + quoted.size() - 1);
}

// %J: the message, JSON-escaped.
class JsonMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    AppendJsonEscaped(std::string_view(msg.payload.data(), msg.payload.size()), dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessage>();
  }
};

// %I: SetLogId's value, JSON-escaped.
class LogId : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    MutexLock lock(&id_mu);
    if (log_id != nullptr) AppendJsonEscaped(*log_id, dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<LogId>();
  }
};

}  // namespace

absl::Status InitLogging(const std::string& role, const std::string& level) {
  const std::string format = absl::GetFlag(FLAGS_log_format);
  if (format != "text" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_format: '", format, "' is not text or json"));
  }
  auto logger = spdlog::stderr_logger_mt(role);
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonMessage>('J').add_flag<LogId>('I').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%f%z","level":"%l","role":"%n","id":"%I","msg":"%J"})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%H:%M:%S.%e %n %^%l%$: %v");
  }
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

void SetLogId(const std::string& id) {
  MutexLock lock(&id_mu);
  if (log_id == nullptr) log_id = new std::string();  // never freed: loggers may run at exit
  *log_id = id;
}

}  // namespace ps
