// The rows of one table in one partition: key -> its values and optimizer
// slots (`stride` floats) and its step count, stored compactly (issue 10's
// memory bar: a key of dim 1 with Adam holds 24 B of state, key 8, value and
// two moments 12, step 4, and the store adds about 5 B to it).
//
// Rows live in blocks of a fixed number of rows (about 64 KiB of state
// each): the first block grows 1.5x at a time, later ones are allocated
// whole, so the slack is at most one block (a row pointer is valid until the
// next row is added). The index is an
// open-addressing table of 32-bit slots (linear probing; load kept between
// 0.68 and 0.85 by growing 1.25x; any capacity, reduced by a multiply-shift):
// a slot holds row + 1 in its low bits and the key hash's low bits above them
// as a fingerprint, so a probe reads a key only when its fingerprint matches.
//
// Not thread-safe: the owning partition's mutex guards it.
#ifndef PS_SERVER_ROW_STORE_H_
#define PS_SERVER_ROW_STORE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ps {

class RowStore {
 public:
  explicit RowStore(int stride);

  size_t size() const { return size_; }
  int stride() const { return stride_; }

  // The row of `key` (`stride` floats) and its step, or nullptr.
  float* Find(uint64_t key, uint32_t** step);
  // The row of `key`; a new row (stride floats of `fill`, step 0) is added if
  // it is missing, and *inserted says so (the caller initializes its values).
  float* FindOrAdd(uint64_t key, float fill, uint32_t** step, bool* inserted);

  // Row r (0 <= r < size(), in insertion order).
  uint64_t key(size_t r) const { return blocks_[r >> shift_].keys[r & mask_]; }
  uint32_t step(size_t r) const { return blocks_[r >> shift_].steps[r & mask_]; }
  const float* row(size_t r) const {
    return blocks_[r >> shift_].rows.data() + (r & mask_) * stride_;
  }

  // Removes every row.
  void Clear();
  // Bytes held (blocks and index), for the memory benchmark.
  size_t MemoryBytes() const;

 private:
  struct Block {
    std::vector<uint64_t> keys;
    std::vector<uint32_t> steps;
    std::vector<float> rows;
  };
  static uint64_t Hash(uint64_t key);
  size_t Home(uint64_t hash) const;
  // Adds the row (index not updated).
  float* Append(uint64_t key, float fill, uint32_t** step);
  void Rehash(size_t capacity);
  void Place(uint64_t hash, uint32_t row);

  const int stride_;
  uint32_t shift_;  // rows per block = 1 << shift_
  size_t mask_;
  std::vector<Block> blocks_;
  size_t size_ = 0;
  std::vector<uint32_t> slots_;  // 0 = empty, else fingerprint << row_bits_ | (row + 1)
  uint32_t row_bits_ = 0;        // bits for row + 1 (row + 1 < 2^row_bits_)
};

}  // namespace ps

#endif  // PS_SERVER_ROW_STORE_H_
