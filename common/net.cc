#include "common/net.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ps {

bool IsWildcardHost(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

namespace {

std::string Unbracket(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    return host.substr(1, host.size() - 2);
  return host;
}

}  // namespace

absl::Status ResolveHost(const std::string& host, const std::string& flag, absl::Duration wait) {
  const absl::Time give_up = absl::Now() + wait;
  absl::Duration backoff = absl::Milliseconds(50);
  const std::string name = Unbracket(host);
  while (true) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = getaddrinfo(name.c_str(), nullptr, &hints, &found);
    if (rc == 0) {
      freeaddrinfo(found);
      return absl::OkStatus();
    }
    // EAI_NONAME/EAI_AGAIN may turn into an answer once the name exists
    // (a container starting, a Service being created); others will not.
    const bool transient = rc == EAI_NONAME || rc == EAI_AGAIN
#ifdef EAI_NODATA
                           || rc == EAI_NODATA
#endif
        ;
    const absl::Time now = absl::Now();
    if (!transient || now >= give_up) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": cannot resolve host '", host, "' (", gai_strerror(rc), ")",
                       transient ? absl::StrCat(" within ", absl::FormatDuration(wait)) : ""));
    }
    absl::SleepFor(std::min(backoff, give_up - now));  // retry period of the lookup
    backoff = std::min(2 * backoff, absl::Seconds(1));
  }
}

absl::StatusOr<std::string> AdvertisedAddress(const std::string& advertise,
                                              const std::string& bind_host, int bound_port,
                                              absl::Duration wait) {
  std::string host = advertise;
  int port = bound_port;
  const size_t colons = std::count(advertise.begin(), advertise.end(), ':');
  // "HOST:PORT" or "[V6]:PORT"; a bare "V6" or "[V6]" has no port.
  const bool with_port =
      !advertise.empty() && advertise.front() == '[' ? advertise.back() != ']' : colons == 1;
  if (with_port) {
    if (absl::Status s = ParseHostPort(advertise, "--advertise", &host, &port); !s.ok()) return s;
    if (port == 0) return absl::InvalidArgumentError("--advertise: port 0 cannot be advertised");
  }
  if (host.empty()) {
    host = bind_host;
    if (IsWildcardHost(host)) {
      char name[HOST_NAME_MAX + 1] = {};
      if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') {
        return absl::InvalidArgumentError(
            "--advertise is needed: the bind address is a wildcard and this machine has no "
            "hostname");
      }
      host = name;
    }
  } else if (IsWildcardHost(host)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--advertise: '", advertise, "' is a wildcard address; peers need one they can reach"));
  }
  if (absl::Status s = ResolveHost(
          host, advertise.empty() ? "--advertise (default: the host name)" : "--advertise", wait);
      !s.ok()) {
    return s;
  }
  if (host.find(':') != std::string::npos && host.front() != '[')
    host = absl::StrCat("[", host, "]");
  return absl::StrCat(host, ":", port);
}

// gRPC reports a failed bind only as "no server"; probe the port ourselves to
// say why.
std::string WhyCannotBind(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string name = Unbracket(host);
  const int rc = getaddrinfo(IsWildcardHost(host) ? nullptr : name.c_str(),
                             std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) return absl::StrCat("cannot resolve '", host, "': ", gai_strerror(rc));
  std::string why = "unknown reason";
  const int fd = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
  if (fd < 0) {
    why = strerror(errno);
  } else {
    if (bind(fd, found->ai_addr, found->ai_addrlen) != 0) why = strerror(errno);
    close(fd);
  }
  freeaddrinfo(found);
  return why;
}

absl::Status ParseHostPort(const std::string& address, const std::string& what, std::string* host,
                           int* port) {
  const size_t colon = address.rfind(':');
  int p = -1;
  const bool bracketed_ok = address.empty() || address.front() != '[' ||
                            (colon != std::string::npos && colon > 0 && address[colon - 1] == ']');
  if (colon == std::string::npos || colon == 0 || !bracketed_ok ||
      !absl::SimpleAtoi(address.substr(colon + 1), &p) || p < 0 || p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": '", address, "' is not host:port with a port in 0..65535"));
  }
  *host = address.substr(0, colon);
  *port = p;
  return absl::OkStatus();
}

}  // namespace ps
