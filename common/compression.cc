#include "common/compression.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#ifdef __F16C__
#include <immintrin.h>
#endif

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace ps {
namespace {

rpc::Encoding EncodingOf(config::CompressionType type) {
  switch (type) {
    case config::FP16:
      return rpc::FP16;
    case config::INT8:
      return rpc::INT8;
    case config::TOPK:
      return rpc::TOPK;
    default:
      return rpc::FLOAT32;
  }
}

absl::Status SliceError(const TableSpec& table, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("table '", table.name, "': ", what));
}

}  // namespace

bool AllFinite(const float* values, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, values + i, sizeof(bits));
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);  // exponent all ones
  }
  return bad == 0;
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;  // NaN stays NaN
  if (abs > 0x477fe000u) abs = 0x477fe000u;      // beyond 65504 (the largest half): 65504
  if (abs >= 0x38800000u) {                      // a normal half (2^-14 and up)
    uint32_t m = abs - 0x38000000u;              // exponent rebased from 127 to 15
    m += 0x0fffu + ((m >> 13) & 1u);             // round to nearest even
    return static_cast<uint16_t>(sign | (m >> 13));
  }
  if (abs < 0x33000000u) return sign;  // below half the smallest subnormal: 0
  // A subnormal half counts units of 2^-24.
  const int exponent = static_cast<int>(abs >> 23);
  const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
  const int shift = 126 - exponent;  // 14..24
  uint32_t q = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (q & 1u))) ++q;
  return static_cast<uint16_t>(sign | q);
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    const float v = std::ldexp(static_cast<float>(mantissa), -24);
    return sign != 0 ? -v : v;
  }
  const uint32_t x = exponent == 31 ? sign | 0x7f800000u | (mantissa << 13)
                                    : sign | ((exponent + 112) << 23) | (mantissa << 13);
  float f;
  std::memcpy(&f, &x, sizeof(f));
  return f;
}

void FloatsToHalves(const float* in, size_t n, uint16_t* out) {
  size_t j = 0;
#ifdef __F16C__
  const __m256 high = _mm256_set1_ps(65504.0f), low = _mm256_set1_ps(-65504.0f);
  for (; j + 8 <= n; j += 8) {
    // min/max take their second operand when one is NaN: NaN goes through.
    const __m256 x = _mm256_max_ps(low, _mm256_min_ps(high, _mm256_loadu_ps(in + j)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j),
                     _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
#endif
  for (; j < n; ++j) out[j] = FloatToHalf(in[j]);
}

void HalvesToFloats(const uint16_t* in, size_t n, float* out) {
  size_t j = 0;
#ifdef __F16C__
  for (; j + 8 <= n; j += 8) {
    _mm256_storeu_ps(out + j,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + j))));
  }
#endif
  for (; j < n; ++j) out[j] = HalfToFloat(in[j]);
}

absl::StatusOr<std::vector<rpc::Encoding>> TableEncodings(const config::JobConfig& job,
                                                          const std::vector<TableSpec>& tables) {
  const config::CompressionSection& c = job.compression();
  std::vector<rpc::Encoding> out(tables.size(), rpc::FLOAT32);
  std::vector<std::string> names;
  for (const TableSpec& t : tables) {
    if (t.statistics) continue;
    out[t.id] = EncodingOf(c.type());
    names.push_back(t.name);
  }
  for (int i = 0; i < c.tables_size(); ++i) {
    const config::TableCompression& tc = c.tables(i);
    auto it = std::find_if(tables.begin(), tables.end(), [&](const TableSpec& t) {
      return !t.statistics && t.name == tc.table();
    });
    if (it == tables.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("compression.tables[", i, "].table: this model has no table '", tc.table(),
                       "' (its tables: ", absl::StrJoin(names, ", "), ")"));
    }
    out[it->id] = EncodingOf(tc.type());
  }
  return out;
}

absl::StatusOr<CompressionOptions> CompressionOptionsFor(const config::JobConfig& job,
                                                         const std::vector<TableSpec>& tables) {
  CompressionOptions out;
  ASSIGN_OR_RETURN(out.encodings, TableEncodings(job, tables));
  const config::CompressionSection& c = job.compression();
  out.whole.assign(out.encodings.size(), false);
  for (const TableSpec& t : tables) {
    if (t.id >= out.encodings.size() || out.encodings[t.id] != rpc::TOPK) continue;
    // num_keys 0: any key, a table of unknown (large) size.
    // keys x dim < below, without overflow.
    const uint64_t dim = static_cast<uint64_t>(std::max(1, t.dim));
    out.whole[t.id] = t.num_keys > 0 && t.num_keys < static_cast<uint64_t>(c.topk_dense_below()) / dim +
                                                         (c.topk_dense_below() % dim != 0);
  }
  out.topk_ratio = c.topk_ratio();
  out.error_feedback = c.error_feedback();
  out.momentum = c.momentum();
  return out;
}

GradientCompressor::GradientCompressor(CompressionOptions options)
    : options_(std::move(options)), residuals_(options_.encodings.size()) {
  if (!options_.error_feedback) options_.momentum = 0;
  options_.whole.resize(options_.encodings.size(), false);
  for (rpc::Encoding e : options_.encodings) enabled_ |= e != rpc::FLOAT32;
}

GradientCompressor::Push GradientCompressor::Prepare(const std::vector<TableKeys>& tables) {
  Push push;
  push.tables_.resize(tables.size());
  std::vector<float> v;
  std::vector<uint32_t> rows;
  for (size_t t = 0; t < tables.size(); ++t) {
    const TableKeys& in = tables[t];
    const rpc::Encoding encoding =
        in.table < options_.encodings.size() ? options_.encodings[in.table] : rpc::FLOAT32;
    Push::Table& out = push.tables_[t];
    out.encoding = encoding;
    if (encoding == rpc::FLOAT32 || in.keys.empty()) continue;
    const size_t n = in.values.size();
    const size_t dim = n / in.keys.size();
    if (dim == 0) continue;
    v.assign(in.values.begin(), in.values.end());
    Residual& residual = residuals_[in.table];
    if (options_.error_feedback) {
      rows.resize(in.keys.size());
      for (size_t i = 0; i < in.keys.size(); ++i) {
        auto [it, fresh] = residual.row.try_emplace(
            in.keys[i], static_cast<uint32_t>(residual.values.size() / dim));
        if (fresh) {
          residual.values.resize(residual.values.size() + dim, 0.0f);
          if (options_.momentum > 0) residual.velocity.resize(residual.values.size(), 0.0f);
        }
        rows[i] = it->second;
        const size_t at = static_cast<size_t>(rows[i]) * dim;
        const float* r = residual.values.data() + at;
        if (options_.momentum > 0) {  // momentum correction: the velocity is what accumulates
          float* u = residual.velocity.data() + at;
          for (size_t j = 0; j < dim; ++j) {
            u[j] = options_.momentum * u[j] + v[i * dim + j];
            v[i * dim + j] = r[j] + u[j];
          }
        } else {
          for (size_t j = 0; j < dim; ++j) v[i * dim + j] += r[j];
        }
      }
    }
    // Each encoding leaves in `sent` what the server will see of each value;
    // the residual is what that misses.
    std::vector<float> sent(n);
    bool sparse = false;  // TOPK sent part of the values
    switch (encoding) {
      case rpc::FP16:
        out.half.resize(n);
        FloatsToHalves(v.data(), n, out.half.data());
        HalvesToFloats(out.half.data(), n, sent.data());
        break;
      case rpc::INT8: {
        const bool per_key = dim >= static_cast<size_t>(kInt8ScalePerKeyDim);
        const size_t group = per_key ? dim : n;
        out.scales.resize(n / group);
        out.bytes.resize(n);
        for (size_t g = 0; g < out.scales.size(); ++g) {
          const float* x = v.data() + g * group;
          float max = 0;
          bool nan = false;
          for (size_t j = 0; j < group; ++j) {
            max = std::max(max, std::abs(x[j]));
            nan |= std::isnan(x[j]);
          }
          // A NaN gradient stays one (a NaN scale): the server refuses it.
          const float scale = nan ? std::numeric_limits<float>::quiet_NaN() : max / 127.0f;
          out.scales[g] = scale;
          const float inverse = scale > 0 ? 1.0f / scale : 0.0f;
          int8_t* q = out.bytes.data() + g * group;
          float* back = sent.data() + g * group;
          if (nan) {  // the NaN scale says it all
            std::fill(q, q + group, 0);
            std::fill(back, back + group, scale);
            continue;
          }
          for (size_t j = 0; j < group; ++j) {
            // Rounded half away from zero; branch-free so that it vectorizes.
            float y = x[j] * inverse;
            y = y > 127.0f ? 127.0f : y;
            y = y < -127.0f ? -127.0f : y;
            const int32_t r = static_cast<int32_t>(y + std::copysign(0.5f, y));
            q[j] = static_cast<int8_t>(r);
            back[j] = static_cast<float>(r) * scale;
          }
        }
        break;
      }
      default: {  // TOPK
        const size_t k =
            options_.whole[in.table]
                ? n
                : std::min(n,
                           std::max<size_t>(1, static_cast<size_t>(std::ceil(
                                                   options_.topk_ratio * static_cast<double>(n)))));
        if (k == n) {  // all of it: as float32
          sent = v;
          out.encoding = rpc::FLOAT32;
          out.whole = v;
        } else if (std::any_of(v.begin(), v.end(), [](float x) { return std::isnan(x); })) {
          sent = v;  // a NaN goes as it is, with everything (the server refuses it)
        } else {
          sparse = true;
          std::vector<float> magnitude(n);
          for (size_t j = 0; j < n; ++j) magnitude[j] = std::abs(v[j]);
          std::nth_element(magnitude.begin(), magnitude.begin() + (k - 1), magnitude.end(),
                           std::greater<float>());
          const float threshold = magnitude[k - 1];
          size_t taken = 0;
          for (size_t j = 0; j < n; ++j) {  // above the threshold first, then ties in order
            if (std::abs(v[j]) > threshold) sent[j] = v[j], ++taken;
          }
          for (size_t j = 0; j < n && taken < k; ++j) {
            if (std::abs(v[j]) == threshold && sent[j] == 0.0f) sent[j] = v[j], ++taken;
          }
        }
        if (out.whole.empty()) out.kept = sent;
        break;
      }
    }
    if (options_.error_feedback) {
      for (size_t i = 0; i < in.keys.size(); ++i) {
        float* r = residual.values.data() + static_cast<size_t>(rows[i]) * dim;
        const size_t at = i * dim;
        for (size_t j = 0; j < dim; ++j) r[j] = v[at + j] - sent[at + j];
        if (options_.momentum > 0 && sparse) {
          // Momentum factor masking: a value sent stops pushing its weight.
          float* u = residual.velocity.data() + static_cast<size_t>(rows[i]) * dim;
          for (size_t j = 0; j < dim; ++j) {
            if (sent[at + j] != 0.0f) u[j] = 0.0f;
          }
        }
      }
    }
  }
  return push;
}

void GradientCompressor::Push::AppendRow(size_t t, size_t i, int dim,
                                         rpc::TableSlice* slice) const {
  const Table& table = tables_[t];
  slice->set_encoding(table.encoding);
  const size_t first = i * static_cast<size_t>(dim);
  switch (table.encoding) {
    case rpc::FP16: {
      std::string* packed = slice->mutable_packed();
      const size_t at = packed->size();
      packed->resize(at + 2 * static_cast<size_t>(dim));
      char* out = packed->data() + at;
      for (int j = 0; j < dim; ++j) {
        const uint16_t h = table.half[first + j];
        out[2 * j] = static_cast<char>(h & 0xff);  // little-endian
        out[2 * j + 1] = static_cast<char>(h >> 8);
      }
      break;
    }
    case rpc::INT8:
      slice->mutable_packed()->append(reinterpret_cast<const char*>(table.bytes.data() + first),
                                      dim);
      if (table.scales.size() > 1) {
        slice->add_scales(table.scales[i]);
      } else if (slice->scales_size() == 0) {
        slice->add_scales(table.scales[0]);
      }
      break;
    case rpc::TOPK: {
      // Absolute positions for now (FinishSlice makes them gaps).
      const uint32_t base = static_cast<uint32_t>(slice->keys_size() - 1) * dim;
      for (int j = 0; j < dim; ++j) {
        const float value = table.kept[first + j];
        if (value == 0.0f) continue;
        slice->add_positions(base + j);
        slice->add_kept_values(value);
      }
      break;
    }
    default:
      break;
  }
}

void GradientCompressor::Push::FinishSlice(rpc::TableSlice* slice) {
  if (slice->encoding() != rpc::TOPK) return;
  auto* positions = slice->mutable_positions();
  for (int j = positions->size() - 1; j > 0; --j)
    positions->Set(j, positions->Get(j) - positions->Get(j - 1));
}

bool IsEncoded(const rpc::TableSlice& slice) {
  return slice.encoding() != rpc::FLOAT32 || !slice.packed().empty() || slice.scales_size() > 0 ||
         slice.positions_size() > 0 || slice.kept_values_size() > 0;
}

absl::Status DecodeSlice(const TableSpec& table, size_t max_values, rpc::TableSlice* slice) {
  if (!IsEncoded(*slice)) return absl::OkStatus();
  if (slice->encoding() == rpc::FLOAT32) {
    return SliceError(table, "compressed fields in a float32 slice");
  }
  if (slice->values_size() > 0) return SliceError(table, "both float32 values and an encoding");
  const size_t keys = static_cast<size_t>(slice->keys_size());
  const size_t dim = static_cast<size_t>(table.dim);
  if (keys > max_values / std::max<size_t>(1, dim)) {
    return SliceError(table, absl::StrCat(keys, " keys of dim ", dim, " decode to more than ",
                                          max_values, " values"));
  }
  const size_t n = keys * dim;
  // Checked first; then decoded straight into the slice's values.
  const std::string& packed = slice->packed();
  const size_t scales = static_cast<size_t>(slice->scales_size());
  switch (slice->encoding()) {
    case rpc::FP16:
      if (packed.size() != 2 * n) {
        return SliceError(table, absl::StrCat("FP16: ", n, " values need ", 2 * n, " bytes, got ",
                                              packed.size()));
      }
      break;
    case rpc::INT8:
      if (packed.size() != n) {
        return SliceError(
            table, absl::StrCat("INT8: ", n, " values need ", n, " bytes, got ", packed.size()));
      }
      if (n > 0 && scales != 1 && scales != keys) {
        return SliceError(table, absl::StrCat("INT8: ", scales, " scales for ", keys,
                                              " keys (one per key, or one)"));
      }
      break;
    case rpc::TOPK: {
      if (slice->positions_size() != slice->kept_values_size()) {
        return SliceError(table, absl::StrCat("TOPK: ", slice->positions_size(), " positions for ",
                                              slice->kept_values_size(), " values"));
      }
      uint64_t at = 0;
      for (int j = 0; j < slice->positions_size(); ++j) {
        const uint32_t gap = slice->positions(j);
        if (j > 0 && gap == 0) return SliceError(table, "TOPK: a position repeats");
        at += gap;
        if (at >= n) {
          return SliceError(
              table, absl::StrCat("TOPK: position ", at, " is beyond the slice's ", n, " values"));
        }
      }
      break;
    }
    default:
      return SliceError(table,
                        absl::StrCat("unknown encoding ", static_cast<int>(slice->encoding())));
  }
  auto* values = slice->mutable_values();
  values->Resize(static_cast<int>(n), 0.0f);
  float* out = values->mutable_data();
  switch (slice->encoding()) {
    case rpc::FP16: {
      // Little-endian on the wire; copied out so the halves are aligned.
      std::vector<uint16_t> halves(n);
      for (size_t j = 0; j < n; ++j) {
        halves[j] = static_cast<uint16_t>(static_cast<uint8_t>(packed[2 * j]) |
                                          static_cast<uint8_t>(packed[2 * j + 1]) << 8);
      }
      HalvesToFloats(halves.data(), n, out);
      break;
    }
    case rpc::INT8: {
      const size_t group = scales == 1 ? n : dim;
      for (size_t g = 0; g * group < n; ++g) {
        const float scale = slice->scales(static_cast<int>(g));
        const int8_t* q = reinterpret_cast<const int8_t*>(packed.data()) + g * group;
        float* o = out + g * group;
        for (size_t j = 0; j < group; ++j) o[j] = static_cast<float>(q[j]) * scale;
      }
      break;
    }
    default: {  // TOPK
      uint64_t at = 0;
      for (int j = 0; j < slice->positions_size(); ++j) {
        at += slice->positions(j);
        out[at] = slice->kept_values(j);
      }
      break;
    }
  }
  slice->clear_packed();
  slice->clear_scales();
  slice->clear_positions();
  slice->clear_kept_values();
  slice->set_encoding(rpc::FLOAT32);
  return absl::OkStatus();
}

}  // namespace ps
