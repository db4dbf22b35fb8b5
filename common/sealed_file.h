// Files that carry their own integrity check (issue 9, "Integrity and
// privacy at rest"): model part files, checkpoint partition files and
// manifests, the scheduler's state file.
//
//   plain:      contents || "PSSUM1\n\0" || SHA-256(contents)      (40-byte trailer)
//   encrypted:  "PSENC1\n\0" || 12-byte IV || AES-256-GCM(contents) || 16-byte tag
//
// A file is encrypted when the process has a key (security.encryption_key_file,
// or --encryption_key_file of ps_model / ps_predict). Reading checks the
// checksum or the tag: a flipped byte, a truncated or empty file, a file of
// another key is DATA_LOSS naming the file, never wrong contents. Thread-safe.
#ifndef PS_COMMON_SEALED_FILE_H_
#define PS_COMMON_SEALED_FILE_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

// The key file of tools that read models and checkpoints (ps_model, ps_predict).
ABSL_DECLARE_FLAG(std::string, encryption_key_file);

namespace ps {

// Reads a 32-byte key file ("ps-data-key HEX", mode 0600, as `psctl keygen`
// writes data.key) and makes it this process's key for later writes and
// reads. An empty path clears it.
absl::Status SetEncryptionKeyFile(const std::string& path, const std::string& field);
bool HasEncryptionKey();
// SetEncryptionKeyFile(--encryption_key_file).
absl::Status SetEncryptionKeyFromFlag();

// Writes atomically (temporary file, mode 0600, rename).
absl::Status WriteSealedFile(const std::string& path, const std::string& contents);
// The contents, checked; larger than `max_bytes`: an error naming the limit.
absl::StatusOr<std::string> ReadSealedFile(const std::string& path, int64_t max_bytes);

// Checks and strips a sealed file's bytes (`path` names it in errors).
absl::StatusOr<std::string> Unseal(const std::string& path, const std::string& bytes);
std::string Seal(const std::string& contents);

// SHA-256 of `bytes`, raw (32 bytes).
std::string Sha256(const std::string& bytes);

}  // namespace ps

#endif  // PS_COMMON_SEALED_FILE_H_
