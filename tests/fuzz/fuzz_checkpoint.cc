// libFuzzer target: checkpoint files: a partition state and a manifest, as
// the servers and the scheduler read them from a checkpoint directory.
#include <unistd.h>

#include <string>

#include "common/checkpoint.h"
#include "common/file_util.h"
#include "common/sealed_file.h"

namespace {

const std::string& Dir() {
  static const std::string* dir = [] {
    auto* d = new std::string("/tmp/fuzz-checkpoint-" + std::to_string(getpid()) + "/epoch-1");
    (void)ps::MakeDirs(*d);
    return d;
  }();
  return *dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  // The input split in two at its first "--\n": the manifest's contents and
  // partition 0's state (each sealed as they would be on disk, and also raw).
  const size_t cut = bytes.find("--\n");
  const std::string manifest = cut == std::string::npos ? bytes : bytes.substr(0, cut);
  const std::string state = cut == std::string::npos ? std::string() : bytes.substr(cut + 3);
  for (bool seal : {true, false}) {
    (void)ps::WriteFileAtomically(Dir() + "/manifest", seal ? ps::Seal(manifest) : manifest);
    (void)ps::WriteFileAtomically(ps::PartitionStatePath(Dir(), 0), seal ? ps::Seal(state) : state);
    (void)ps::ReadCheckpointManifest(Dir());
    (void)ps::ReadPartitionState(Dir(), 0);
  }
  (void)ps::FindLatestCheckpoint(Dir() + "/..");
  return 0;
}
