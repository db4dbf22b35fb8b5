// Checkpoint files (DESIGN.md section 6). A checkpoint is a directory
//   <checkpoint.dir>/epoch-N/          N = epochs done when it was taken
//     partition-PPPPP.state            rpc::PartitionState, binary, one per partition,
//                                      written by the partition's primary server
//     manifest                         rpc::CheckpointManifest, binary, written by the
//                                      scheduler once every partition file is in
// Every file is sealed (common/sealed_file.h: a checksum, or encryption),
// the manifest lists each partition file's SHA-256, and every file is
// written to a temporary name and renamed; the manifest comes
// last, so a directory without one (a crash while writing) is incomplete and
// never used. Pure functions; thread-safe for distinct files.
#ifndef PS_COMMON_CHECKPOINT_H_
#define PS_COMMON_CHECKPOINT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/checkpoint.pb.h"
#include "proto/job_config.pb.h"
#include "proto/ps.pb.h"

namespace ps {

// Largest checkpoint or state file read.
inline constexpr int64_t kMaxStateFileBytes = int64_t{16} << 30;

// checkpoint.dir, or <job.output_dir>/checkpoints when empty.
std::string CheckpointRoot(const config::JobConfig& job);
// <root>/epoch-<epochs_done>.
std::string CheckpointDir(const std::string& root, int epochs_done);
std::string PartitionStatePath(const std::string& dir, int partition);

// *sha256 (if given): of the file's bytes, for the manifest.
absl::Status WritePartitionState(const std::string& dir, const rpc::PartitionState& state,
                                 std::string* sha256 = nullptr);
// The state of `partition` in checkpoint `dir`; an error names the file.
absl::StatusOr<rpc::PartitionState> ReadPartitionState(const std::string& dir, int partition);

absl::Status WriteCheckpointManifest(const std::string& dir,
                                     const rpc::CheckpointManifest& manifest);
absl::StatusOr<rpc::CheckpointManifest> ReadCheckpointManifest(const std::string& dir);

struct FoundCheckpoint {
  std::string dir;
  rpc::CheckpointManifest manifest;
};
// The complete checkpoint under `root` with the most epochs done (one whose
// manifest parses and whose partition files all exist); NOT_FOUND if none.
absl::StatusOr<FoundCheckpoint> FindLatestCheckpoint(const std::string& root);

// Deletes the checkpoints under `root` but the `keep` latest complete ones
// (and incomplete ones older than those). keep 0 keeps all. Returns how many
// were deleted.
int PruneCheckpoints(const std::string& root, int keep);

// Whether a checkpoint written by `saved` can be loaded into `job`: same
// mode, partitions, tables and optimizer (the state layout); an error says
// what differs.
absl::Status CheckpointCompatible(const config::JobConfig& saved, const config::JobConfig& job);

}  // namespace ps

#endif  // PS_COMMON_CHECKPOINT_H_
