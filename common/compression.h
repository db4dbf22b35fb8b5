// Gradient compression on the wire (the job's `compression` section): FP16,
// INT8 with scales, and top-k sparsification, with error feedback on the
// worker. The worker's GradientCompressor decides once per push what each
// value becomes (deterministically: BSP stays bit-identical) and writes the
// encoded rows into the request's slices; the server's DecodeSlice turns a
// slice back into float32 values before anything else reads it.
#ifndef PS_COMMON_COMPRESSION_H_
#define PS_COMMON_COMPRESSION_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tables.h"
#include "proto/job_config.pb.h"
#include "proto/ps.pb.h"

namespace ps {

// INT8 slices of tables with at least this dim carry a scale per key; of
// narrower ones a single scale (the table's, for the whole push).
inline constexpr int kInt8ScalePerKeyDim = 64;

// Each table's encoding from the job config (model tables only: statistics
// tables always travel as float32). An error names the config field.
absl::StatusOr<std::vector<rpc::Encoding>> TableEncodings(const config::JobConfig& job,
                                                          const std::vector<TableSpec>& tables);

// What a worker's compressor does (the job's compression section).
struct CompressionOptions {
  std::vector<rpc::Encoding> encodings;  // by table id; empty: all float32
  // By table id: TOPK tables small enough to go whole (fewer values than
  // compression.topk_dense_below), still through error feedback and
  // momentum correction. Top-k would starve them (a bias of 10 values gets
  // 1 a push) for bytes that hardly count.
  std::vector<bool> whole;
  float topk_ratio = 0.01f;
  bool error_feedback = true;
  // > 0 (with error feedback): momentum correction. The worker keeps each
  // key's velocity u = momentum * u + g and accumulates u instead of g, so
  // the server's plain SGD steps like momentum SGD; under TOPK a value's
  // velocity restarts once it is sent (momentum factor masking).
  float momentum = 0;
};

// The options of a job (an error names the config field).
absl::StatusOr<CompressionOptions> CompressionOptionsFor(const config::JobConfig& job,
                                                         const std::vector<TableSpec>& tables);

// Not thread-safe: one per KvClient, used by the pushing thread only.
class GradientCompressor {
 public:
  explicit GradientCompressor(CompressionOptions options);

  bool enabled() const { return enabled_; }

  // One push's encoded gradient, indexed like the pushed tables.
  class Push {
   public:
    // Appends row `i` of input table `t` (whose key the caller has just
    // added to `slice`) in the table's encoding.
    void AppendRow(size_t t, size_t i, int dim, rpc::TableSlice* slice) const;
    // Once a slice holds all its rows: positions become gaps.
    static void FinishSlice(rpc::TableSlice* slice);
    rpc::Encoding encoding(size_t t) const { return tables_[t].encoding; }
    // A FLOAT32 table's values if the compressor made them (a whole TOPK
    // table), else null: the caller sends its own.
    const float* values(size_t t) const {
      return tables_[t].whole.empty() ? nullptr : tables_[t].whole.data();
    }

   private:
    friend class GradientCompressor;
    struct Table {
      rpc::Encoding encoding = rpc::FLOAT32;
      std::vector<uint16_t> half;  // FP16
      std::vector<int8_t> bytes;   // INT8
      std::vector<float> scales;   // INT8: per key, or one
      std::vector<float> kept;     // TOPK: the values sent, 0 elsewhere
      std::vector<float> whole;    // FLOAT32 (a whole TOPK table): the values sent
    };
    std::vector<Table> tables_;
  };

  // Call once per push (not per attempt): adds each key's carried error to
  // its gradient, encodes, and carries what the encoding lost to the next
  // push. Tables in FLOAT32 are left to the caller, but for whole TOPK
  // tables, whose values Push::values gives.
  Push Prepare(const std::vector<TableKeys>& tables);

 private:
  struct Residual {
    absl::flat_hash_map<uint64_t, uint32_t> row;  // key -> row in values
    std::vector<float> values;
    std::vector<float> velocity;  // momentum correction: by row, like values
  };
  CompressionOptions options_;
  bool enabled_ = false;
  std::vector<Residual> residuals_;  // by table id
};

// Whether a slice carries an encoding or any of its fields (else it is
// plain float32 values and DecodeSlice has nothing to do).
bool IsEncoded(const rpc::TableSlice& slice);

// Replaces an encoded slice's payload by its float32 values (keys x dim).
// Refuses (INVALID_ARGUMENT, naming the table) payloads whose sizes disagree
// with the keys, positions out of order or range, and slices that would
// decode to more than max_values values.
absl::Status DecodeSlice(const TableSpec& table, size_t max_values, rpc::TableSlice* slice);

// float <-> IEEE half (round to nearest even; beyond the half range: +-65504;
// NaN stays NaN). The array forms use the CPU's F16C instructions where the
// build targets them, with the same results.
// Whether no value is NaN or infinite (the server's check of every pushed
// gradient; an integer test of the exponent bits, vectorized).
bool AllFinite(const float* values, size_t n);

uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);
void FloatsToHalves(const float* in, size_t n, uint16_t* out);
void HalvesToFloats(const uint16_t* in, size_t n, float* out);

}  // namespace ps

#endif  // PS_COMMON_COMPRESSION_H_
