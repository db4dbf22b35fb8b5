#include "common/audit.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sync.h"

namespace ps {
namespace {

struct AuditState {
  Mutex mu;
  int fd ABSL_GUARDED_BY(mu) = -1;
  std::string who ABSL_GUARDED_BY(mu);
  absl::Time minute_start ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  int refusals_this_minute ABSL_GUARDED_BY(mu) = 0;
  int suppressed ABSL_GUARDED_BY(mu) = 0;
};

AuditState& State() {
  static AuditState* state = new AuditState;
  return *state;
}

// Length of the UTF-8 sequence starting at s[i], or 0 if it is not one.
size_t Utf8Length(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t min;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  uint32_t code = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const unsigned char d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0) != 0x80) return 0;
    code = (code << 6) | (d & 0x3F);
  }
  if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return n;
}

std::string Line(const std::string& who, std::string_view event, const AuditFields& fields) {
  std::string line = absl::StrCat(
      "{\"time\":",
      JsonQuote(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone())),
      ",\"who\":", JsonQuote(who), ",\"event\":", JsonQuote(event));
  for (const auto& [key, value] : fields)
    absl::StrAppend(&line, ",", JsonQuote(key), ":", JsonQuote(value));
  line += "}\n";
  return line;
}

void WriteLine(int fd, const std::string& line) {
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a full disk loses audit lines, never the job
    done += static_cast<size_t>(n);
  }
}

}  // namespace

absl::Status OpenAuditLog(const std::string& path, const std::string& who) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open the audit log '", path, "': ", strerror(errno)));
  }
  AuditState& st = State();
  MutexLock lock(&st.mu);
  if (st.fd >= 0) close(st.fd);
  st.fd = fd;
  st.who = who;
  return absl::OkStatus();
}

void SetAuditWho(const std::string& who) {
  AuditState& st = State();
  MutexLock lock(&st.mu);
  st.who = who;
}

void CloseAuditLog() {
  AuditState& st = State();
  MutexLock lock(&st.mu);
  if (st.fd >= 0) close(st.fd);
  st.fd = -1;
}

void Audit(std::string_view event, const AuditFields& fields) {
  AuditState& st = State();
  MutexLock lock(&st.mu);
  if (st.fd < 0) return;
  WriteLine(st.fd, Line(st.who, event, fields));
}

void AuditRefusal(const AuditFields& fields) {
  AuditState& st = State();
  MutexLock lock(&st.mu);
  if (st.fd < 0) return;
  const absl::Time now = absl::Now();
  if (now - st.minute_start >= absl::Minutes(1)) {
    if (st.suppressed > 0) {
      WriteLine(st.fd, Line(st.who, "refusals_suppressed",
                            {{"count", absl::StrCat(st.suppressed)},
                             {"why", absl::StrCat("more than ", kMaxRefusalLinesPerMinute,
                                                  " refused calls in a minute")}}));
    }
    st.minute_start = now;
    st.refusals_this_minute = 0;
    st.suppressed = 0;
  }
  if (st.refusals_this_minute >= kMaxRefusalLinesPerMinute) {
    ++st.suppressed;
    return;
  }
  ++st.refusals_this_minute;
  WriteLine(st.fd, Line(st.who, "refused", fields));
}

std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8Length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string JsonQuote(std::string_view raw) {
  const std::string s = ValidUtf8(raw);
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out += "\"";
  return out;
}

}  // namespace ps
