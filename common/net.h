// Addresses of listening processes: what a process binds (--host, --port)
// and what it tells its peers (--advertise HOST[:PORT]). Containers, NAT and
// Kubernetes pods bind 0.0.0.0 and advertise a DNS name; names resolve through
// the system resolver (getaddrinfo).
#ifndef PS_COMMON_NET_H_
#define PS_COMMON_NET_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ps {

// True for an address that means "every interface" (0.0.0.0, ::, [::], "").
bool IsWildcardHost(const std::string& host);

// Resolves `host` (a name or a literal address) through the system resolver.
// A name that does not resolve (yet: a container or a Kubernetes Service that
// is still being created) is retried until `wait` has passed, then
// INVALID_ARGUMENT naming `flag`, e.g.
//   --scheduler: cannot resolve host 'schedulr' (Name or service not known) within 30s
absl::Status ResolveHost(const std::string& host, const std::string& flag, absl::Duration wait);

// The address a process listening on `bind_host`:`bound_port` advertises.
// `advertise` is the --advertise flag: "" (the bind host, or this machine's
// hostname if the bind host is a wildcard, and the bound port), "HOST" (the
// bound port) or "HOST:PORT" (a port mapped elsewhere, e.g. by NAT).
// The host must resolve (ResolveHost with flag "--advertise").
absl::StatusOr<std::string> AdvertisedAddress(const std::string& advertise,
                                              const std::string& bind_host, int bound_port,
                                              absl::Duration wait);

// Why host:port cannot be bound (gRPC and civetweb say only that it failed):
// e.g. "Address already in use".
std::string WhyCannotBind(const std::string& host, int port);

// Splits "host:port" (or "[v6]:port"); the error names `what` (e.g. "--scheduler").
// Brackets are kept in *host so that host:port can be rebuilt as is.
absl::Status ParseHostPort(const std::string& address, const std::string& what, std::string* host,
                           int* port);

// Plain TCP sockets, for the TCP data plane (common/data_frame.h).
// Listens on host:port (port 0: a free one); returns the socket and sets
// *bound_port. Errors say why, e.g. "cannot listen on 127.0.0.1:7001:
// Address already in use".
absl::StatusOr<int> ListenTcp(const std::string& host, int port, int* bound_port);
// Connects to "host:port" within `timeout` (TCP_NODELAY set). UNAVAILABLE
// naming the address if it cannot.
absl::StatusOr<int> ConnectTcp(const std::string& address, absl::Duration timeout);
// "ip:port" of the peer of a connected socket (for audit lines).
std::string PeerOf(int fd);

}  // namespace ps

#endif  // PS_COMMON_NET_H_
