// The saved-model format: a directory holding
//   MANIFEST          text: "psmodel 1", "partitions P", then one line per
//                     table: "table <id> <name> <dim>", then maybe lines
//                     "empty A B-C ...": partitions without rows (no file)
//   part-NNNNN.bin    one file per partition with rows, written by the server
//                     that owns it (a job of 8,192 partitions and 57 weights
//                     wrote 8,192 files per saved model, most of them empty)
// A part file is little-endian binary:
//   magic "PSPART1\n" (8 bytes), u32 partition, u32 table count, then per table:
//   u32 table id, u32 dim, u64 n, n x u64 keys, n*dim x f32 values (row-major).
// then the sealed-file trailer (common/sealed_file.h: SHA-256, or AES-256-GCM
// with security.encryption_key_file); MANIFEST ends with "sha256 HEX" of the
// lines above it. A flipped byte anywhere is DATA_LOSS naming the file.
// Files are written to a temporary name and renamed, so a reader never sees a
// partial file. Pure functions; thread-safe for distinct files.
#ifndef PS_COMMON_MODEL_IO_H_
#define PS_COMMON_MODEL_IO_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tables.h"

namespace ps {

// Largest files ReadModel reads.
inline constexpr int64_t kMaxManifestBytes = 1 << 20;
inline constexpr int64_t kMaxPartBytes = int64_t{16} << 30;

// One table's rows within one partition.
struct TableRows {
  uint32_t table = 0;
  uint32_t dim = 1;
  std::vector<uint64_t> keys;
  std::vector<float> values;  // keys.size() * dim
};

absl::Status WritePartitionFile(const std::string& dir, int partition,
                                const std::vector<TableRows>& tables);
// `keys_per_partition` (if not empty, one count per partition): the
// partitions with none are listed as empty, and readers expect no file.
absl::Status WriteManifest(const std::string& dir, int num_partitions,
                           const std::vector<TableSpec>& tables,
                           const std::vector<uint64_t>& keys_per_partition = {});

// A whole model in memory: table name -> key -> values.
struct LoadedModel {
  int num_partitions = 0;
  struct Table {
    uint32_t id = 0;
    std::string name;
    uint32_t dim = 1;
    std::map<uint64_t, std::vector<float>> rows;
  };
  std::map<uint32_t, Table> tables;  // by id
};

// Reads MANIFEST and every part file of `dir`. Errors name the file.
absl::StatusOr<LoadedModel> ReadModel(const std::string& dir);

// Adds the rows of partition `p`'s part file (its unsealed `contents`) to
// `model`, whose tables come from the MANIFEST. `path` names it in errors.
absl::Status ParsePartFile(const std::string& path, int p, const std::string& contents,
                           LoadedModel* model);

// "table key v0 v1 ..." per line, sorted by table id then key.
std::string DumpModelText(const LoadedModel& model);

}  // namespace ps

#endif  // PS_COMMON_MODEL_IO_H_
