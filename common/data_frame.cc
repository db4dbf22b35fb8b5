#include "common/data_frame.h"

#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace ps::frame {

// Split bodies carry float32 values as the host stores them.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the data plane assumes little-endian");

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
  out[5] = static_cast<char>(header.flags);
  out[6] = static_cast<char>(header.status & 0xff);
  out[7] = static_cast<char>(header.status >> 8);
  Put32(out + 8, header.body_len);
  Put32(out + 12, header.timeout_ms);
  Put64(out + 16, header.call_id);
}

absl::StatusOr<Header> DecodeHeader(const char in[kHeaderBytes], uint32_t max_body) {
  if (Get32(in) != kMagic) {
    return absl::InvalidArgumentError(
        "not a data-plane frame (wrong magic: another program, or another version of ours)");
  }
  const uint8_t kind = static_cast<uint8_t>(in[4]);
  if (kind < static_cast<uint8_t>(Kind::kHello) || kind > static_cast<uint8_t>(Kind::kReply)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown data-plane frame kind ", kind));
  }
  Header h;
  h.kind = static_cast<Kind>(kind);
  h.flags = static_cast<uint8_t>(in[5]);
  if ((h.flags & ~kSplitValues) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown data-plane frame flags ", static_cast<int>(h.flags)));
  }
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

bool SerializeSplitHead(const google::protobuf::MessageLite& head, const ValueSpans& tail,
                        Header* header, std::string* out) {
  const size_t size = head.ByteSizeLong();
  uint64_t body = 4 + static_cast<uint64_t>(size);
  for (const absl::Span<const float>& span : tail) body += span.size() * sizeof(float);
  if (body > UINT32_MAX) return false;
  out->resize(kHeaderBytes + 4 + size);
  Put32(out->data() + kHeaderBytes, static_cast<uint32_t>(size));
  header->flags |= kSplitValues;
  header->body_len = static_cast<uint32_t>(body);
  return head.SerializeWithCachedSizesToArray(
             reinterpret_cast<uint8_t*>(out->data() + kHeaderBytes + 4)) ==
         reinterpret_cast<uint8_t*>(out->data() + out->size());
}

void SplitValues(google::protobuf::RepeatedPtrField<rpc::TableSlice>* slices,
                 std::vector<google::protobuf::RepeatedField<float>>* kept, ValueSpans* tail) {
  kept->resize(slices->size());
  for (int i = 0; i < slices->size(); ++i) {
    rpc::TableSlice* slice = slices->Mutable(i);
    if (slice->values().empty()) continue;
    (*kept)[i].Swap(slice->mutable_values());
    slice->set_raw_values(static_cast<uint32_t>((*kept)[i].size()));
    tail->emplace_back((*kept)[i].data(), (*kept)[i].size());
  }
}

absl::Status ReadSplitBody(uint32_t body_len, Reader read, Buffer* buffer,
                           google::protobuf::MessageLite* msg,
                           google::protobuf::RepeatedPtrField<rpc::TableSlice>* slices) {
  const absl::Status broken = absl::UnavailableError("the stream ended inside a frame");
  if (body_len < 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("a split body of ", body_len, " bytes has no room for its head's length"));
  }
  char len[4];
  if (!read(len, sizeof(len))) return broken;
  const uint32_t head_len = Get32(len);
  if (head_len > body_len - 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a split body's head of ", head_len, " bytes is longer than the body's ", body_len - 4));
  }
  char* head = buffer->Reserve(head_len);  // null when head_len is 0
  if (head_len > 0 && !read(head, head_len)) return broken;
  if (!msg->ParseFromArray(head, static_cast<int>(head_len))) {
    return absl::InvalidArgumentError(
        absl::StrCat("the split body's head is not a ", msg->GetTypeName()));
  }
  uint64_t want = 0;
  for (int i = 0; i < slices->size(); ++i) {
    const rpc::TableSlice& slice = slices->Get(i);
    if (slice.raw_values() > 0 && !slice.values().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("slice ", i, " of the split body has values in its head and after it"));
    }
    want += static_cast<uint64_t>(slice.raw_values()) * sizeof(float);
  }
  const uint64_t have = body_len - 4 - head_len;
  if (want != have) {
    return absl::InvalidArgumentError(absl::StrCat("the split body's head announces ", want,
                                                   " bytes of values; the body carries ", have));
  }
  for (int i = 0; i < slices->size(); ++i) {
    rpc::TableSlice* slice = slices->Mutable(i);
    const int n = static_cast<int>(slice->raw_values());
    if (n == 0) continue;
    google::protobuf::RepeatedField<float>* values = slice->mutable_values();
    values->Reserve(n);
    float* to = values->AddNAlreadyReserved(n);
    if (!read(reinterpret_cast<char*>(to), static_cast<size_t>(n) * sizeof(float))) return broken;
    slice->clear_raw_values();
  }
  return absl::OkStatus();
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

bool WriteFullSpans(int fd, const std::string& head, const ValueSpans& tail) {
  std::vector<iovec> iov;
  iov.reserve(1 + tail.size());
  iov.push_back({const_cast<char*>(head.data()), head.size()});
  for (const absl::Span<const float>& span : tail) {
    if (!span.empty())
      iov.push_back({const_cast<float*>(span.data()), span.size() * sizeof(float)});
  }
  size_t i = 0;
  while (i < iov.size()) {
    msghdr msg{};
    msg.msg_iov = iov.data() + i;
    msg.msg_iovlen = std::min<size_t>(iov.size() - i, IOV_MAX);
    const ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    size_t sent = static_cast<size_t>(w);
    while (i < iov.size() && sent >= iov[i].iov_len) sent -= iov[i++].iov_len;
    if (sent > 0) {
      iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + sent;
      iov[i].iov_len -= sent;
    }
  }
  return true;
}

}  // namespace ps::frame
