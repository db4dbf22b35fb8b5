// The TCP data plane's framing (cluster.data_plane: tcp): pushes and pulls
// between workers and servers as length-prefixed frames on one plain TCP
// connection per (worker client, server), instead of gRPC calls. Control
// traffic (registration, heartbeats, ticks, replication, checkpoints) stays
// on gRPC, and so does everything when TLS is on.
//
// A frame is a 24-byte header, then `body_len` bytes:
//   magic    u32  kMagic ("PSD2"; anything else closes the connection)
//   kind     u8   Kind
//   flags    u8   kSplitValues or 0 (other bits: refused)
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
// Split bodies (flags & kSplitValues): the body is u32 head_len, then a head
// of head_len bytes (the message serialized, each TableSlice's float32
// values left out and counted in its `raw_values`), then those values,
// float32 little-endian, slice after slice. Values go from the sender's
// memory to the socket (sendmsg over spans) and from the socket into the
// received message's `values`, without a copy of the framing's own (the
// sender may have gathered scattered rows first). Workers send pushes and
// pulls split; a server answers a split request's reply split.
//
// Versions: a job's processes run one release. A peer speaking another
// framing (PSD1) fails on the magic, and the error ends its connection.
//
// Thread-safe (pure functions).
#ifndef PS_COMMON_DATA_FRAME_H_
#define PS_COMMON_DATA_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "google/protobuf/message_lite.h"
#include "proto/ps.pb.h"

namespace ps::frame {

// "PSD2" in little-endian bytes ("PSD1" had no split bodies).
inline constexpr uint32_t kMagic = 0x32445350;
inline constexpr size_t kHeaderBytes = 24;

enum class Kind : uint8_t { kHello = 1, kPush = 2, kPull = 3, kReply = 4 };
inline constexpr uint8_t kSplitValues = 1;  // a flag

struct Header {
  Kind kind = Kind::kReply;
  uint8_t flags = 0;
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

// A split body's values: spans of the sender's memory, in slice order.
using ValueSpans = std::vector<absl::Span<const float>>;

// `out` becomes kHeaderBytes of room for the header, then a split body's
// head_len and head (`head`: the message with each slice's values left out
// and counted in raw_values); `tail` holds those values. Sets
// header->body_len. False if the head does not serialize or the body would
// exceed 4 GiB.
bool SerializeSplitHead(const google::protobuf::MessageLite& head, const ValueSpans& tail,
                        Header* header, std::string* out);

// Moves each of `slices`' values into `kept` (no copy) and counts them in
// raw_values: `tail` then spans them for SerializeSplitHead.
void SplitValues(google::protobuf::RepeatedPtrField<rpc::TableSlice>* slices,
                 std::vector<google::protobuf::RepeatedField<float>>* kept, ValueSpans* tail);

// Reads `size` bytes into `data`; false if the stream ended or broke. Not
// called with size 0.
using Reader = absl::FunctionRef<bool(char* data, size_t size)>;

// Reads a split body of `body_len` bytes (after its header) from `read`,
// parsing the head into `msg` (a PushRequest, PullRequest or PullResponse:
// `slices` its slices) and each slice's raw values straight into its
// `values`. UNAVAILABLE if the stream broke; INVALID_ARGUMENT (naming what)
// if the head does not parse, a slice has values in both places, or the
// counts do not add up to the body (the rest of the body is then unread).
absl::Status ReadSplitBody(uint32_t body_len, Reader read, Buffer* buffer,
                           google::protobuf::MessageLite* msg,
                           google::protobuf::RepeatedPtrField<rpc::TableSlice>* slices);

// Blocking socket I/O on `fd`, retrying on EINTR: false on EOF or an error.
bool ReadFull(int fd, char* data, size_t size);
bool WriteFull(int fd, const char* data, size_t size);
// Writes `head` then the values of `tail`, straight from their memory.
bool WriteFullSpans(int fd, const std::string& head, const ValueSpans& tail);

}  // namespace ps::frame

#endif  // PS_COMMON_DATA_FRAME_H_
