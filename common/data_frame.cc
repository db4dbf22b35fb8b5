#include "common/data_frame.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace ps::frame {
namespace {

void Put32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void Put64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint32_t Get32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
uint64_t Get64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

}  // namespace

void EncodeHeader(const Header& header, char out[kHeaderBytes]) {
  std::memset(out, 0, kHeaderBytes);
  Put32(out, kMagic);
  out[4] = static_cast<char>(header.kind);
  out[6] = static_cast<char>(header.status & 0xff);
  out[7] = static_cast<char>(header.status >> 8);
  Put32(out + 8, header.body_len);
  Put32(out + 12, header.timeout_ms);
  Put64(out + 16, header.call_id);
}

absl::StatusOr<Header> DecodeHeader(const char in[kHeaderBytes], uint32_t max_body) {
  if (Get32(in) != kMagic) {
    return absl::InvalidArgumentError("not a data-plane frame (wrong magic)");
  }
  const uint8_t kind = static_cast<uint8_t>(in[4]);
  if (kind < static_cast<uint8_t>(Kind::kHello) || kind > static_cast<uint8_t>(Kind::kReply)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown data-plane frame kind ", kind));
  }
  Header h;
  h.kind = static_cast<Kind>(kind);
  h.status = static_cast<uint16_t>(static_cast<uint8_t>(in[6]) |
                                   (static_cast<uint16_t>(static_cast<uint8_t>(in[7])) << 8));
  h.body_len = Get32(in + 8);
  h.timeout_ms = Get32(in + 12);
  h.call_id = Get64(in + 16);
  if (h.body_len > max_body) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the frame's body is ", h.body_len, " bytes; the limit is ", max_body));
  }
  return h;
}

bool SerializeBody(const google::protobuf::MessageLite& body, std::string* out) {
  const size_t size = body.ByteSizeLong();
  if (size > UINT32_MAX) return false;
  out->resize(kHeaderBytes + size);
  return body.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(
             out->data() + kHeaderBytes)) == reinterpret_cast<uint8_t*>(out->data() + out->size());
}

bool ReadFull(int fd, char* data, size_t size) {
  while (size > 0) {
    const ssize_t r = read(fd, data, size);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    data += r;
    size -= static_cast<size_t>(r);
  }
  return true;
}

bool WriteFull(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t w = send(fd, data, size, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    size -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace ps::frame
