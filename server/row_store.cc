#include "server/row_store.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>

namespace ps {
namespace {

constexpr size_t kBlockBytes = 64 * 1024;
constexpr size_t kMinSlots = 16;
// Grow the index when it would pass 17/20 = 0.85 full; by 5/4, so it is at
// least 0.68 full afterwards.
constexpr size_t kLoadNum = 17, kLoadDen = 20;

}  // namespace

RowStore::RowStore(int stride) : stride_(stride) {
  const size_t row_bytes = sizeof(uint64_t) + sizeof(uint32_t) + sizeof(float) * stride_;
  const size_t rows = std::max<size_t>(1, kBlockBytes / row_bytes);
  shift_ = static_cast<uint32_t>(std::bit_width(rows) - 1);  // largest power of 2 <= rows
  mask_ = (size_t{1} << shift_) - 1;
}

uint64_t RowStore::Hash(uint64_t key) {
  // splitmix64's finalizer: keys are often small consecutive numbers.
  uint64_t z = key + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

size_t RowStore::Home(uint64_t hash) const {
  // The high bits pick the slot (multiply-shift onto any capacity); the
  // fingerprint takes the low bits.
  return static_cast<size_t>((static_cast<unsigned __int128>(hash) * slots_.size()) >> 64);
}

void RowStore::Place(uint64_t hash, uint32_t row) {
  const uint32_t fp_bits = 32 - row_bits_;
  const uint64_t fp = fp_bits == 0 ? 0 : hash & ((uint64_t{1} << fp_bits) - 1);
  size_t i = Home(hash);
  while (slots_[i] != 0) {
    if (++i == slots_.size()) i = 0;
  }
  slots_[i] = static_cast<uint32_t>((fp << row_bits_) | (uint64_t{row} + 1));
}

void RowStore::Rehash(size_t capacity) {
  // row + 1 <= size < capacity must fit in the slot below the fingerprint.
  if (capacity >= (uint64_t{1} << 32)) {
    std::fprintf(stderr, "RowStore: more than 2^32 rows of one table in one partition\n");
    std::abort();
  }
  slots_.assign(capacity, 0);
  row_bits_ = static_cast<uint32_t>(std::bit_width(capacity));
  for (size_t r = 0; r < size_; ++r) Place(Hash(key(r)), static_cast<uint32_t>(r));
}

float* RowStore::Find(uint64_t key, uint32_t** step) {
  if (slots_.empty()) return nullptr;
  const uint64_t hash = Hash(key);
  const uint32_t fp_bits = 32 - row_bits_;
  const uint64_t fp = fp_bits == 0 ? 0 : hash & ((uint64_t{1} << fp_bits) - 1);
  const uint64_t row_mask = (uint64_t{1} << row_bits_) - 1;
  size_t i = Home(hash);
  while (true) {
    const uint64_t s = slots_[i];
    if (s == 0) return nullptr;
    if ((s >> row_bits_) == fp) {
      const size_t r = static_cast<size_t>((s & row_mask) - 1);
      Block& b = blocks_[r >> shift_];
      const size_t j = r & mask_;
      if (b.keys[j] == key) {
        *step = &b.steps[j];
        return b.rows.data() + j * stride_;
      }
    }
    if (++i == slots_.size()) i = 0;
  }
}

float* RowStore::Append(uint64_t key, float fill, uint32_t** step) {
  const size_t per_block = mask_ + 1;
  if (blocks_.empty() || blocks_.back().keys.size() == per_block) {
    Block& b = blocks_.emplace_back();
    if (blocks_.size() > 1) {  // the table fills blocks: take this one whole
      b.keys.reserve(per_block);
      b.steps.reserve(per_block);
      b.rows.reserve(per_block * stride_);
    }
  }
  Block& b = blocks_.back();
  if (b.keys.size() == b.keys.capacity()) {  // only the first block gets here
    const size_t n = std::min(per_block, std::max<size_t>(8, b.keys.size() + b.keys.size() / 2));
    b.keys.reserve(n);
    b.steps.reserve(n);
    b.rows.reserve(n * stride_);
  }
  b.keys.push_back(key);
  b.steps.push_back(0);
  b.rows.resize(b.rows.size() + stride_, fill);
  ++size_;
  *step = &b.steps.back();
  return b.rows.data() + b.rows.size() - stride_;
}

float* RowStore::FindOrAdd(uint64_t key, float fill, uint32_t** step, bool* inserted) {
  if (float* row = Find(key, step)) {
    *inserted = false;
    return row;
  }
  *inserted = true;
  if ((size_ + 1) * kLoadDen > slots_.size() * kLoadNum) {
    Rehash(std::max(kMinSlots, slots_.size() + slots_.size() / 4 + 1));
  }
  float* row = Append(key, fill, step);
  Place(Hash(key), static_cast<uint32_t>(size_ - 1));
  return row;
}

void RowStore::Clear() {
  blocks_ = {};
  slots_ = {};
  size_ = 0;
  row_bits_ = 0;
}

size_t RowStore::MemoryBytes() const {
  size_t bytes = blocks_.capacity() * sizeof(Block) + slots_.capacity() * sizeof(uint32_t);
  for (const Block& b : blocks_) {
    bytes += b.keys.capacity() * sizeof(uint64_t) + b.steps.capacity() * sizeof(uint32_t) +
             b.rows.capacity() * sizeof(float);
  }
  return bytes;
}

}  // namespace ps
