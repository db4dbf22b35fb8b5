// Key hashing and partitioning. The key space of every table is cut into P
// partitions by a hash of (table, key); partitions, not servers, are the unit
// of placement. Pure functions; thread-safe.
#ifndef PS_COMMON_PARTITIONING_H_
#define PS_COMMON_PARTITIONING_H_

#include <cstdint>

namespace ps {

// splitmix64's finalizer: a bijective mix of 64 bits.
constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// The partition of `key` of table `table`, in [0, num_partitions).
// REQUIRES: num_partitions > 0.
constexpr int PartitionOf(uint32_t table, uint64_t key, int num_partitions) {
  return static_cast<int>(Mix64(key ^ (static_cast<uint64_t>(table) << 48) ^ 0x9e3779b97f4a7c15ULL) %
                          static_cast<uint64_t>(num_partitions));
}

// A deterministic 64-bit random stream (splitmix64), for shuffles and
// initializers that must give the same numbers on every machine.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return Mix64(state_);
  }
  // Uniform in [0, 1).
  double NextDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n). REQUIRES: n > 0.
  uint64_t NextBelow(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

}  // namespace ps

#endif  // PS_COMMON_PARTITIONING_H_
