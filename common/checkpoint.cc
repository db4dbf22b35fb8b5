#include "common/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/sealed_file.h"
#include "common/tables.h"

namespace ps {
namespace {

constexpr char kManifest[] = "manifest";
constexpr char kPrefix[] = "epoch-";

// Epochs done of a checkpoint directory's name, or -1.
int EpochsOf(const std::string& name) {
  int n = -1;
  if (name.rfind(kPrefix, 0) != 0 || !absl::SimpleAtoi(name.substr(sizeof(kPrefix) - 1), &n))
    return -1;
  return n;
}

// Checkpoint directories under `root` by epochs done, newest first.
std::vector<std::pair<int, std::string>> Listing(const std::string& root) {
  std::vector<std::pair<int, std::string>> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    const int n = EpochsOf(entry.path().filename().string());
    if (n >= 0 && entry.is_directory(ec)) out.emplace_back(n, entry.path().string());
  }
  std::sort(out.rbegin(), out.rend());
  return out;
}

absl::Status Complete(const std::string& dir, const rpc::CheckpointManifest& m) {
  if (m.num_partitions() <= 0 || m.files_size() != m.num_partitions()) {
    return absl::DataLossError(absl::StrCat(dir, "/manifest lists ", m.files_size(), " files for ",
                                            m.num_partitions(), " partitions"));
  }
  for (const std::string& f : m.files()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(std::filesystem::path(dir) / f, ec)) {
      return absl::DataLossError(absl::StrCat(dir, ": ", f, " is missing"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string CheckpointRoot(const config::JobConfig& job) {
  return job.checkpoint().dir().empty() ? job.job().output_dir() + "/checkpoints"
                                        : job.checkpoint().dir();
}

std::string CheckpointDir(const std::string& root, int epochs_done) {
  return absl::StrCat(root, "/", kPrefix, epochs_done);
}

std::string PartitionStatePath(const std::string& dir, int partition) {
  return absl::StrFormat("%s/partition-%05d.state", dir, partition);
}

absl::Status WritePartitionState(const std::string& dir, const rpc::PartitionState& state,
                                 std::string* sha256) {
  std::string bytes;
  if (!state.SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat("cannot serialize partition ", state.partition()));
  }
  const std::string sealed = Seal(bytes);
  if (sha256 != nullptr) *sha256 = Sha256(sealed);
  return WriteFileAtomically(PartitionStatePath(dir, state.partition()), sealed);
}

absl::StatusOr<rpc::PartitionState> ReadPartitionState(const std::string& dir, int partition) {
  const std::string path = PartitionStatePath(dir, partition);
  auto raw = ReadWholeFile(path, kMaxStateFileBytes);
  if (!raw.ok()) return raw.status();
  // The manifest names the file's checksum: a partition file of another
  // checkpoint copied in (stale) is refused too.
  auto manifest = ReadCheckpointManifest(dir);
  if (!manifest.ok()) return manifest.status();
  if (partition < manifest->sha256_size() && manifest->sha256(partition) != Sha256(*raw)) {
    return absl::DataLossError(absl::StrCat(path,
                                            ": not the file this checkpoint's manifest lists "
                                            "(stale or replaced)"));
  }
  auto bytes = Unseal(path, *raw);
  if (!bytes.ok()) return bytes.status();
  rpc::PartitionState state;
  if (!state.ParseFromString(*bytes))
    return absl::DataLossError(absl::StrCat(path, ": not a partition state"));
  if (state.partition() != static_cast<uint32_t>(partition)) {
    return absl::DataLossError(absl::StrCat(path, ": holds partition ", state.partition()));
  }
  return state;
}

absl::Status WriteCheckpointManifest(const std::string& dir,
                                     const rpc::CheckpointManifest& manifest) {
  std::string bytes;
  if (!manifest.SerializeToString(&bytes))
    return absl::InternalError("cannot serialize the manifest");
  return WriteSealedFile(absl::StrCat(dir, "/", kManifest), bytes);
}

absl::StatusOr<rpc::CheckpointManifest> ReadCheckpointManifest(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kManifest);
  auto bytes = ReadSealedFile(path, kMaxStateFileBytes);
  if (!bytes.ok()) return bytes.status();
  rpc::CheckpointManifest m;
  if (!m.ParseFromString(*bytes))
    return absl::DataLossError(absl::StrCat(path, ": not a checkpoint manifest"));
  if (absl::Status s = Complete(dir, m); !s.ok()) return s;
  return m;
}

absl::StatusOr<FoundCheckpoint> FindLatestCheckpoint(const std::string& root) {
  for (const auto& [n, dir] : Listing(root)) {
    auto m = ReadCheckpointManifest(dir);
    if (m.ok() && m->epochs_done() == n) return FoundCheckpoint{dir, std::move(*m)};
    // No manifest: a checkpoint whose writing was cut short, never complete;
    // the one before is the latest. Anything else is damage to report.
    if (!m.ok() && !absl::IsNotFound(m.status())) {
      return absl::DataLossError(absl::StrCat("the latest checkpoint ", dir,
                                              " is damaged: ", m.status().message(),
                                              " (remove it to resume from the one before)"));
    }
  }
  return absl::NotFoundError(absl::StrCat("no complete checkpoint in '", root, "'"));
}

int PruneCheckpoints(const std::string& root, int keep) {
  if (keep <= 0) return 0;
  int complete = 0, deleted = 0;
  for (const auto& [n, dir] : Listing(root)) {
    if (complete < keep) {
      // Newer incomplete ones may still be being written: leave them.
      if (ReadCheckpointManifest(dir).ok()) ++complete;
      continue;
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (!ec) ++deleted;
  }
  return deleted;
}

absl::Status CheckpointCompatible(const config::JobConfig& saved, const config::JobConfig& job) {
  if (saved.job().mode() != job.job().mode()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the checkpoint was written in mode ", config::Mode_Name(saved.job().mode()),
                     ", the job is ", config::Mode_Name(job.job().mode())));
  }
  if (saved.cluster().num_partitions() != job.cluster().num_partitions()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the checkpoint has ", saved.cluster().num_partitions(),
        " partitions, the job's cluster.num_partitions is ", job.cluster().num_partitions()));
  }
  if (saved.optimizer().type() != job.optimizer().type()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the checkpoint was written with optimizer ",
                     config::OptimizerType_Name(saved.optimizer().type()), ", the job's is ",
                     config::OptimizerType_Name(job.optimizer().type())));
  }
  const std::vector<TableSpec> a = TablesForJob(saved), b = TablesForJob(job);
  if (a.size() != b.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the checkpoint's model has ", a.size(), " tables, the job's ", b.size()));
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].dim != b[i].dim || a[i].num_keys != b[i].num_keys) {
      return absl::FailedPreconditionError(
          absl::StrCat("the checkpoint's table ", i, " is '", a[i].name, "' (dim ", a[i].dim, ", ",
                       a[i].num_keys, " keys), the job's '", b[i].name, "' (dim ", b[i].dim, ", ",
                       b[i].num_keys, " keys)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace ps
