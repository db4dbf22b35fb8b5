#include "common/model_io.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/sealed_file.h"

namespace ps {
namespace {

constexpr char kMagic[8] = {'P', 'S', 'P', 'A', 'R', 'T', '1', '\n'};

template <typename T>
void Append(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// A bounds-checked reader over a file's bytes.
class Cursor {
 public:
  explicit Cursor(const std::string& data) : data_(data) {}
  bool Read(void* dst, size_t n) {
    if (n == 0) return true;  // dst may be null (an empty vector's data())
    if (n > data_.size() - pos_) return false;
    std::memcpy(dst, data_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  template <typename T>
  bool Get(T* v) { return Read(v, sizeof(T)); }
  bool AtEnd() const { return pos_ == data_.size(); }
  size_t Left() const { return data_.size() - pos_; }

 private:
  const std::string& data_;
  size_t pos_ = 0;
};

}  // namespace

absl::Status WritePartitionFile(const std::string& dir, int partition,
                                const std::vector<TableRows>& tables) {
  std::string out(kMagic, sizeof(kMagic));
  Append<uint32_t>(&out, static_cast<uint32_t>(partition));
  Append<uint32_t>(&out, static_cast<uint32_t>(tables.size()));
  for (const TableRows& t : tables) {
    Append<uint32_t>(&out, t.table);
    Append<uint32_t>(&out, t.dim);
    Append<uint64_t>(&out, t.keys.size());
    out.append(reinterpret_cast<const char*>(t.keys.data()), t.keys.size() * sizeof(uint64_t));
    out.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * sizeof(float));
  }
  return WriteSealedFile(absl::StrFormat("%s/part-%05d.bin", dir, partition), out);
}

absl::Status WriteManifest(const std::string& dir, int num_partitions,
                           const std::vector<TableSpec>& tables,
                           const std::vector<uint64_t>& keys_per_partition) {
  std::string out = absl::StrCat("psmodel 1\npartitions ", num_partitions, "\n");
  for (const TableSpec& t : tables) absl::StrAppend(&out, "table ", t.id, " ", t.name, " ", t.dim, "\n");
  // Runs of empty partitions, 32 runs a line.
  std::vector<std::string> runs;
  const int n = std::min<int>(num_partitions, static_cast<int>(keys_per_partition.size()));
  for (int p = 0; p < n;) {
    if (keys_per_partition[p] != 0) {
      ++p;
      continue;
    }
    int end = p;
    while (end + 1 < n && keys_per_partition[end + 1] == 0) ++end;
    runs.push_back(end == p ? absl::StrCat(p) : absl::StrCat(p, "-", end));
    p = end + 1;
  }
  for (size_t i = 0; i < runs.size(); i += 32) {
    absl::StrAppend(&out, "empty");
    for (size_t j = i; j < std::min(runs.size(), i + 32); ++j) absl::StrAppend(&out, " ", runs[j]);
    absl::StrAppend(&out, "\n");
  }
  // The lines above, checked on load (a text file a user may read).
  absl::StrAppend(&out, "sha256 ", absl::BytesToHexString(Sha256(out)), "\n");
  return WriteFileAtomically(dir + "/MANIFEST", out);
}

absl::StatusOr<LoadedModel> ReadModel(const std::string& dir) {
  LoadedModel model;
  const std::string manifest_path = dir + "/MANIFEST";
  auto manifest = ReadWholeFile(manifest_path, kMaxManifestBytes);
  if (!manifest.ok()) return manifest.status();
  // The last line: "sha256 HEX" of everything before it.
  const size_t sum_at = manifest->rfind("sha256 ");
  if (sum_at == std::string::npos ||
      manifest->substr(sum_at) !=
          absl::StrCat("sha256 ", absl::BytesToHexString(Sha256(manifest->substr(0, sum_at))),
                       "\n")) {
    return absl::DataLossError(absl::StrCat(manifest_path,
                                            ": checksum mismatch or missing (the last line, "
                                            "sha256 HEX, covers the lines above)"));
  }
  int line_no = 0;
  std::vector<std::pair<int, int>> empty;  // runs, checked against P at the end
  for (absl::string_view line :
       absl::StrSplit(manifest->substr(0, sum_at), '\n', absl::SkipEmpty())) {
    ++line_no;
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    auto bad = [&] {
      return absl::InvalidArgumentError(
          absl::StrCat(manifest_path, ":", line_no, ": cannot parse '", line, "'"));
    };
    if (line_no == 1) {
      if (f.size() != 2 || f[0] != "psmodel" || f[1] != "1") return bad();
    } else if (f.size() == 2 && f[0] == "partitions") {
      if (!absl::SimpleAtoi(f[1], &model.num_partitions) || model.num_partitions < 1 ||
          model.num_partitions > 65536) {
        return bad();
      }
    } else if (f.size() == 4 && f[0] == "table") {
      LoadedModel::Table t;
      if (!absl::SimpleAtoi(f[1], &t.id) || !absl::SimpleAtoi(f[3], &t.dim) || t.dim == 0 ||
          t.dim > (1u << 28)) {
        return bad();
      }
      t.name = f[2];
      model.tables[t.id] = std::move(t);
    } else if (f.size() >= 2 && f[0] == "empty") {
      for (size_t i = 1; i < f.size(); ++i) {
        std::vector<std::string> ends = absl::StrSplit(f[i], '-');
        int first = 0, last = 0;
        if (ends.size() > 2 || !absl::SimpleAtoi(ends[0], &first) ||
            !absl::SimpleAtoi(ends.back(), &last) || first < 0 || last < first) {
          return absl::InvalidArgumentError(
              absl::StrCat(manifest_path, ":", line_no, ": bad empty partition run '", f[i], "'"));
        }
        empty.emplace_back(first, last);
      }
    } else {
      return bad();
    }
  }
  std::vector<bool> has_file(model.num_partitions, true);
  for (const auto& [first, last] : empty) {
    if (last >= model.num_partitions) {
      return absl::InvalidArgumentError(absl::StrCat(manifest_path, ": empty partition ", last,
                                                     " is beyond the model's ",
                                                     model.num_partitions, " partitions"));
    }
    for (int p = first; p <= last; ++p) has_file[p] = false;
  }
  for (int p = 0; p < model.num_partitions; ++p) {
    if (!has_file[p]) continue;  // empty: whatever file is there is an older save's
    const std::string path = absl::StrFormat("%s/part-%05d.bin", dir, p);
    auto data = ReadSealedFile(path, kMaxPartBytes);
    if (!data.ok()) return data.status();
    if (absl::Status s = ParsePartFile(path, p, *data, &model); !s.ok()) return s;
  }
  return model;
}

absl::Status ParsePartFile(const std::string& path, int p, const std::string& contents,
                           LoadedModel* model) {
  Cursor c(contents);
  auto corrupt = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(path, ": corrupt part file: ", what));
  };
  char magic[8];
  uint32_t partition = 0, count = 0;
  if (!c.Read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) return corrupt("bad magic");
  if (!c.Get(&partition) || !c.Get(&count)) return corrupt("truncated header");
  if (partition != static_cast<uint32_t>(p)) return corrupt("wrong partition number");
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t id = 0, dim = 0;
    uint64_t n = 0;
    if (!c.Get(&id) || !c.Get(&dim) || !c.Get(&n)) return corrupt("truncated table header");
    auto it = model->tables.find(id);
    if (it == model->tables.end()) return corrupt(absl::StrCat("table ", id, " not in MANIFEST"));
    if (it->second.dim != dim) return corrupt(absl::StrCat("table ", id, " has dim ", dim));
    // Sizes from the file are checked against the bytes there before any
    // allocation (a part claiming 2^36 rows is an error, not bad_alloc).
    if (n > c.Left() / (sizeof(uint64_t) + uint64_t{dim} * sizeof(float))) {
      return corrupt(absl::StrCat("table ", id, " claims ", n, " rows of dim ", dim,
                                  "; the file has ", c.Left(), " bytes left"));
    }
    std::vector<uint64_t> keys(n);
    std::vector<float> values(n * dim);
    if (!c.Read(keys.data(), n * sizeof(uint64_t)) ||
        !c.Read(values.data(), values.size() * sizeof(float))) {
      return corrupt("truncated rows");
    }
    for (uint64_t k = 0; k < n; ++k) {
      it->second.rows[keys[k]].assign(values.begin() + k * dim, values.begin() + (k + 1) * dim);
    }
  }
  if (!c.AtEnd()) return corrupt("trailing bytes");
  return absl::OkStatus();
}

std::string DumpModelText(const LoadedModel& model) {
  std::string out;
  for (const auto& [id, table] : model.tables) {
    for (const auto& [key, values] : table.rows) {
      absl::StrAppend(&out, table.name, " ", key);
      for (float v : values) absl::StrAppend(&out, " ", absl::StrFormat("%.9g", v));
      out.push_back('\n');
    }
  }
  return out;
}

}  // namespace ps
