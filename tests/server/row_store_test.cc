#include "server/row_store.h"

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

// Each row's floats and step are a function of its key, so any row found for
// the wrong key, or moved wrongly by a rehash, shows.
float Value(uint64_t key, int i) { return static_cast<float>(key % 100003) + 0.25f * i; }

TEST(RowStore, FindsEveryKeyAcrossGrowthAndKeepsInsertionOrder) {
  const int stride = 3;
  RowStore store(stride);
  std::mt19937_64 rng(7);
  std::vector<uint64_t> keys;
  std::unordered_map<uint64_t, size_t> want;  // key -> row
  // Random 64-bit keys, small consecutive ones, and repeats.
  for (int i = 0; i < 300000; ++i) {
    const uint64_t key = i % 3 == 0   ? rng()
                         : i % 3 == 1 ? static_cast<uint64_t>(i)
                                      : keys[rng() % keys.size()];
    uint32_t* step;
    bool inserted;
    float* row = store.FindOrAdd(key, -1.0f, &step, &inserted);
    ASSERT_EQ(inserted, want.count(key) == 0) << "key " << key;
    if (inserted) {
      for (int j = 0; j < stride; ++j) {
        ASSERT_EQ(row[j], -1.0f);
        row[j] = Value(key, j);
      }
      ASSERT_EQ(*step, 0u);
      *step = static_cast<uint32_t>(key % 1000);
      want[key] = keys.size();
      keys.push_back(key);
    }
  }
  ASSERT_EQ(store.size(), keys.size());
  for (size_t r = 0; r < keys.size(); ++r) {
    ASSERT_EQ(store.key(r), keys[r]);
    ASSERT_EQ(store.step(r), keys[r] % 1000);
    for (int j = 0; j < stride; ++j) ASSERT_EQ(store.row(r)[j], Value(keys[r], j));
    uint32_t* step = nullptr;
    const float* row = store.Find(keys[r], &step);
    ASSERT_EQ(row, store.row(r)) << "key " << keys[r];
    ASSERT_EQ(*step, keys[r] % 1000);
  }
  int absent = 0;
  for (int i = 0; i < 10000; ++i) {
    const uint64_t key = rng();
    if (want.count(key) > 0) continue;
    uint32_t* step;
    EXPECT_EQ(store.Find(key, &step), nullptr);
    ++absent;
  }
  EXPECT_GT(absent, 9990);
}

TEST(RowStore, HoldsLittleMoreThanItsRows) {
  // A key of dim 1 with Adam: key 8 B + value and 2 moments 12 B + step 4 B.
  RowStore store(3);
  const size_t n = 1000000;
  for (uint64_t k = 0; k < n; ++k) {
    uint32_t* step;
    bool inserted;
    store.FindOrAdd(k * 0x9e3779b97f4a7c15ULL, 0.0f, &step, &inserted);
  }
  const double per_key = static_cast<double>(store.MemoryBytes()) / n;
  EXPECT_GE(per_key, 24.0);
  // The index stays at least 0.68 full (4 / 0.68 = 5.9 B), the blocks'
  // slack is at most one block of 64 KiB.
  EXPECT_LE(per_key, 24.0 + 5.9 + 65536.0 / n) << per_key << " B per key";
}

TEST(RowStore, ClearEmptiesAndTheStoreIsReusable) {
  RowStore store(2);
  uint32_t* step;
  bool inserted;
  for (uint64_t k = 0; k < 1000; ++k) store.FindOrAdd(k, 0.0f, &step, &inserted);
  store.Clear();
  EXPECT_EQ(store.size(), 0u);
  EXPECT_EQ(store.Find(5, &step), nullptr);
  float* row = store.FindOrAdd(5, 2.0f, &step, &inserted);
  EXPECT_TRUE(inserted);
  EXPECT_EQ(row[0], 2.0f);
  EXPECT_EQ(store.key(0), 5u);
}

}  // namespace
}  // namespace ps
