#include "common/sealed_file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/sync.h"

ABSL_FLAG(std::string, encryption_key_file, "",
          "key of an encrypted model or checkpoint (the job's security.encryption_key_file)");

namespace ps {
namespace {

constexpr char kSumMagic[8] = {'P', 'S', 'S', 'U', 'M', '1', '\n', '\0'};
constexpr char kEncMagic[8] = {'P', 'S', 'E', 'N', 'C', '1', '\n', '\0'};
constexpr size_t kIv = 12, kTag = 16;

Mutex key_mu;
std::string* data_key ABSL_GUARDED_BY(key_mu) = nullptr;

std::string Key() {
  MutexLock lock(&key_mu);
  return data_key == nullptr ? std::string() : *data_key;
}

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

}  // namespace

std::string Sha256(const std::string& bytes) {
  unsigned char out[32];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), out, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(out), 32);
}

absl::Status SetEncryptionKeyFile(const std::string& path, const std::string& field) {
  std::string key;
  if (!path.empty()) {
    auto text = ReadWholeFile(path, 4096);
    if (!text.ok())
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", text.status().message()));
    std::vector<absl::string_view> words =
        absl::StrSplit(absl::StripAsciiWhitespace(*text), ' ', absl::SkipEmpty());
    if (words.size() != 2 || words[0] != "ps-data-key" || words[1].size() != 64) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": '", path,
                       "' is not a key file (one line: ps-data-key, then 64 hex digits; "
                       "`psctl keygen DIR` writes DIR/data.key)"));
    }
    key = absl::HexStringToBytes(words[1]);
  }
  MutexLock lock(&key_mu);
  if (data_key == nullptr) data_key = new std::string;
  *data_key = std::move(key);
  return absl::OkStatus();
}

bool HasEncryptionKey() { return !Key().empty(); }

absl::Status SetEncryptionKeyFromFlag() {
  return SetEncryptionKeyFile(absl::GetFlag(FLAGS_encryption_key_file), "--encryption_key_file");
}

std::string Seal(const std::string& contents) {
  const std::string key = Key();
  if (key.empty()) {
    std::string out = contents;
    out.append(kSumMagic, sizeof(kSumMagic));
    out += Sha256(contents);
    return out;
  }
  std::string out(kEncMagic, sizeof(kEncMagic));
  unsigned char iv[kIv];
  RAND_bytes(iv, kIv);
  out.append(reinterpret_cast<char*>(iv), kIv);
  const size_t head = out.size();
  out.resize(head + contents.size() + kTag);
  std::unique_ptr<EVP_CIPHER_CTX, CtxFree> ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                     reinterpret_cast<const unsigned char*>(key.data()), iv);
  // The magic is authenticated too.
  EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(kEncMagic),
                    sizeof(kEncMagic));
  EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data() + head), &len,
                    reinterpret_cast<const unsigned char*>(contents.data()),
                    static_cast<int>(contents.size()));
  EVP_EncryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data() + head + len), &len);
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag,
                      reinterpret_cast<unsigned char*>(out.data() + head + contents.size()));
  return out;
}

absl::StatusOr<std::string> Unseal(const std::string& path, const std::string& bytes) {
  const auto lost = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat(path, ": ", why));
  };
  if (bytes.size() >= sizeof(kEncMagic) + kIv + kTag &&
      std::memcmp(bytes.data(), kEncMagic, 8) == 0) {
    const std::string key = Key();
    if (key.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(path,
                       ": the file is encrypted; give its key (security.encryption_key_file, or "
                       "--encryption_key_file)"));
    }
    const size_t n = bytes.size() - sizeof(kEncMagic) - kIv - kTag;
    const auto* iv = reinterpret_cast<const unsigned char*>(bytes.data() + sizeof(kEncMagic));
    const auto* cipher = iv + kIv;
    std::string out(n, '\0');
    std::unique_ptr<EVP_CIPHER_CTX, CtxFree> ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                       reinterpret_cast<const unsigned char*>(key.data()), iv);
    EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(kEncMagic),
                      sizeof(kEncMagic));
    EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, cipher,
                      static_cast<int>(n));
    std::string tag(bytes.data() + bytes.size() - kTag, kTag);
    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag.data());
    if (EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data() + len), &len) !=
        1) {
      return lost("the file does not decrypt with this key (corrupt, or written with another key)");
    }
    return out;
  }
  if (bytes.size() < sizeof(kSumMagic) + 32) {
    return lost(bytes.empty() ? "the file is empty" : "the file is truncated (no checksum)");
  }
  const size_t n = bytes.size() - sizeof(kSumMagic) - 32;
  if (std::memcmp(bytes.data() + n, kSumMagic, sizeof(kSumMagic)) != 0) {
    return lost("no checksum at the end (truncated, corrupt, or not written by this system)");
  }
  std::string contents = bytes.substr(0, n);
  const std::string sum = Sha256(contents);
  if (CRYPTO_memcmp(sum.data(), bytes.data() + n + sizeof(kSumMagic), 32) != 0) {
    return lost("checksum mismatch: the file is corrupt");
  }
  return contents;
}

absl::Status WriteSealedFile(const std::string& path, const std::string& contents) {
  return WriteFileAtomically(path, Seal(contents));
}

absl::StatusOr<std::string> ReadSealedFile(const std::string& path, int64_t max_bytes) {
  auto bytes = ReadWholeFile(path, max_bytes);
  if (!bytes.ok()) return bytes.status();
  return Unseal(path, *bytes);
}

}  // namespace ps
