// The audit log: <output_dir>/audit.log, one JSON object a line, appended by
// every process of the job (scheduler and servers) with O_APPEND, one
// write(2) a line. What goes there: membership changes, failovers, moves,
// drains, checkpoints, saved models, and every refused call (who, what,
// why). Refusals are capped at kMaxRefusalLinesPerMinute lines a minute per
// process (an attacker must not fill the disk); the rest are counted in one
// line when the minute ends, and always in ps_requests_refused_total.
// Thread-safe.
#ifndef PS_COMMON_AUDIT_H_
#define PS_COMMON_AUDIT_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace ps {

inline constexpr int kMaxRefusalLinesPerMinute = 120;

using AuditFields = std::vector<std::pair<std::string, std::string>>;

// Opens (creating, mode 0600) the process's audit log; `who` names this
// process in every line (e.g. "scheduler", "server rank 1"). Until then,
// events go nowhere. Calling it again switches files.
absl::Status OpenAuditLog(const std::string& path, const std::string& who);
void SetAuditWho(const std::string& who);
void CloseAuditLog();

// Appends {"time": ..., "who": ..., "event": event, fields...}.
void Audit(std::string_view event, const AuditFields& fields);
// The same for a refused call, within the rate cap.
void AuditRefusal(const AuditFields& fields);

// `s` with every byte sequence that is not UTF-8 replaced by U+FFFD (protobuf
// drops a string field that is not UTF-8; JSON must be UTF-8).
std::string ValidUtf8(std::string_view s);
// `s` as a JSON string literal, quotes included (made valid UTF-8 first).
std::string JsonQuote(std::string_view s);

}  // namespace ps

#endif  // PS_COMMON_AUDIT_H_
