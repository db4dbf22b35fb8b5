#include "common/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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
namespace {

// A TCP socket bound to host:port (and listening, if `listen_too`), or -1
// with *why set, e.g. "Address already in use" or "cannot resolve 'x': ...".
int BindTcp(const std::string& host, int port, bool listen_too, std::string* why) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string name = Unbracket(host);
  const int rc = getaddrinfo(IsWildcardHost(host) ? nullptr : name.c_str(),
                             std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) {
    *why = absl::StrCat("cannot resolve '", host, "': ", gai_strerror(rc));
    return -1;
  }
  int fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  if (fd < 0) {
    *why = strerror(errno);
  } else if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 ||
             (listen_too && listen(fd, 128) != 0)) {
    *why = strerror(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(found);
  return fd;
}

}  // namespace

std::string WhyCannotBind(const std::string& host, int port) {
  std::string why;
  const int fd = BindTcp(host, port, /*listen_too=*/false, &why);
  if (fd < 0) return why;
  close(fd);
  return "unknown reason";
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

absl::StatusOr<int> ListenTcp(const std::string& host, int port, int* bound_port) {
  std::string why;
  const int fd = BindTcp(host, port, /*listen_too=*/true, &why);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port, ": ", why));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *bound_port = addr.ss_family == AF_INET6
                    ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                    : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return fd;
}

absl::StatusOr<int> ConnectTcp(const std::string& address, absl::Duration timeout) {
  std::string host;
  int port = 0;
  if (absl::Status s = ParseHostPort(address, "data-plane address", &host, &port); !s.ok())
    return s;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(Unbracket(host).c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", address, ": ", gai_strerror(rc)));
  }
  std::string why = "timed out";
  int fd = -1;
  const absl::Time deadline = absl::Now() + timeout;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    const int s =
        socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (s < 0) {
      why = strerror(errno);
      continue;
    }
    bool ok = connect(s, a->ai_addr, a->ai_addrlen) == 0;
    if (!ok && errno == EINPROGRESS) {
      pollfd p{s, POLLOUT, 0};
      const int64_t ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, INT_MAX))) == 1) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
        ok = err == 0;
        if (!ok) why = strerror(err);
      } else {
        why = "timed out";
      }
    } else if (!ok) {
      why = strerror(errno);
    }
    if (!ok) {
      close(s);
      continue;
    }
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
    const int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fd = s;
  }
  freeaddrinfo(found);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot connect to ", address, ": ", why));
  return fd;
}

std::string PeerOf(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown";
  char ip[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
    return absl::StrCat("tcp:[", ip, "]:", ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<sockaddr_in*>(&addr);
  inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
  return absl::StrCat("tcp:", ip, ":", ntohs(a->sin_port));
}

}  // namespace ps
