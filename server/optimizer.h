// Server-side optimizers. An Optimizer updates one key's row in place: its
// `dim` values, its slots (optimizer state, num_slots() * dim floats stored
// next to the values) and its step count. Stateless objects: thread-safe;
// callers serialize updates of one row (the partition lock).
#ifndef PS_SERVER_OPTIMIZER_H_
#define PS_SERVER_OPTIMIZER_H_

#include <cstdint>
#include <memory>

#include "common/tables.h"

namespace ps {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Floats of state per value (0 for SGD, 1 for momentum/AdaGrad, 2 for Adam).
  virtual int num_slots() const = 0;
  // Initial value of the slots of a new key.
  virtual float slot_init() const { return 0.0f; }
  // Applies one step with gradient `scale * grad` (scale turns a sum over a
  // batch into a mean; the L2 term is added here) and learning rate
  // learning_rate * lr_scale (the schedule's factor). `step` counts this key's
  // updates, before this one. Slot k of value i is slots[k * slot_stride + i]
  // (slot_stride is the row's dim; it is more than `dim` when a long row is
  // updated a range at a time: every optimizer but statistics' is
  // element-wise, so the ranges give the bits one call would).
  virtual void Update(int dim, const float* grad, float scale, float lr_scale, float* value,
                      float* slots, uint32_t* step, int slot_stride) const = 0;
};

// The optimizer of `table` (its type, hyper-parameters and L2).
std::unique_ptr<Optimizer> MakeOptimizer(const TableSpec& table);

// Fills a new key's values with the table's initializer, deterministically from
// (seed, table, key), so every server and every run gives the same values.
void InitializeRow(const TableSpec& table, uint64_t seed, uint64_t key, float* values);

}  // namespace ps

#endif  // PS_SERVER_OPTIMIZER_H_
