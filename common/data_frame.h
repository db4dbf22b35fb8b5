// The TCP data plane's framing (cluster.data_plane: tcp): pushes and pulls
// between workers and servers as length-prefixed frames on one plain TCP
// connection per (worker client, server), instead of gRPC calls. Control
// traffic (registration, heartbeats, ticks, replication, checkpoints) stays
// on gRPC, and so does everything when TLS is on.
//
// A frame is a 24-byte header, then `body_len` bytes:
//   magic    u32  kMagic ("PSD1"; anything else closes the connection)
//   kind     u8   Kind
//   reserved u8   0
//   status   u16  replies: a grpc::StatusCode (0 = OK)
//   body_len u32  <= the receiver's limit (checked before any allocation)
//   timeout  u32  requests: milliseconds the caller waits (0: the server's default)
//   call_id  u64  chosen by the client, echoed by the reply
// all little-endian. Bodies: kHello, the caller's ticket (empty when the job
// is insecure); kPush, an rpc::PushRequest; kPull, an rpc::PullRequest;
// kReply, the response message when status is OK, else the error text.
// The client says hello first; the server answers each request with one
// reply of the same call_id, in any order (a pull may wait at the
// consistency gate while later pushes finish).
//
// Copies of a push's values: the client serializes the request (1) and the
// kernel copies it to the server's buffer (as raw TCP does); the server
// parses the body (2) and applies it. Thread-safe (pure functions).
#ifndef PS_COMMON_DATA_FRAME_H_
#define PS_COMMON_DATA_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

namespace ps::frame {

inline constexpr uint32_t kMagic = 0x31445350;  // "PSD1" in little-endian bytes
inline constexpr size_t kHeaderBytes = 24;

enum class Kind : uint8_t { kHello = 1, kPush = 2, kPull = 3, kReply = 4 };

struct Header {
  Kind kind = Kind::kReply;
  uint16_t status = 0;
  uint32_t body_len = 0;
  uint32_t timeout_ms = 0;
  uint64_t call_id = 0;
};

void EncodeHeader(const Header& header, char out[kHeaderBytes]);
// INVALID_ARGUMENT for a wrong magic or kind; RESOURCE_EXHAUSTED for a body
// longer than `max_body` (named in the message).
absl::StatusOr<Header> DecodeHeader(const char in[kHeaderBytes], uint32_t max_body);

// `out` becomes kHeaderBytes of room for the header, then `body` serialized
// once at its exact size (no regrowth). False if it does not serialize.
bool SerializeBody(const google::protobuf::MessageLite& body, std::string* out);

// A receive buffer reused from frame to frame (grows, never zero-fills;
// above kKeepBytes it is given back once the frame is handled).
class Buffer {
 public:
  static constexpr size_t kKeepBytes = 8 << 20;
  char* Reserve(size_t size) {
    if (size > capacity_ || (capacity_ > kKeepBytes && size <= kKeepBytes)) {
      data_.reset(new char[size]);
      capacity_ = size;
    }
    return data_.get();
  }

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
};

// Blocking socket I/O on `fd`, retrying on EINTR: false on EOF or an error.
bool ReadFull(int fd, char* data, size_t size);
bool WriteFull(int fd, const char* data, size_t size);

}  // namespace ps::frame

#endif  // PS_COMMON_DATA_FRAME_H_
