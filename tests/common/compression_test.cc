#include "common/compression.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "absl/strings/match.h"
#include "common/config.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(Half, EveryHalfComesBackAndFloatsRoundToTheNearest) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    if (std::isinf(f)) {
      // Beyond the half range a float becomes the largest half, 65504.
      EXPECT_EQ(HalfToFloat(FloatToHalf(f)), f > 0 ? 65504.0f : -65504.0f);
      continue;
    }
    ASSERT_EQ(FloatToHalf(f), h) << "half 0x" << std::hex << h;
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> exponent(-30, 16);
  for (int i = 0; i < 100000; ++i) {
    const float x = std::ldexp(1.0f + (rng() % 1000000) / 1e6f, static_cast<int>(exponent(rng)));
    const float back = HalfToFloat(FloatToHalf(x));
    // Nearest: no half is closer than the one chosen.
    const uint16_t h = FloatToHalf(x);
    const float below = HalfToFloat(static_cast<uint16_t>(h - 1));
    const float above = HalfToFloat(static_cast<uint16_t>(h + 1));
    if (h > 0 && h < 0x7bff) {
      EXPECT_LE(std::abs(back - x), std::abs(below - x)) << x;
      EXPECT_LE(std::abs(back - x), std::abs(above - x)) << x;
    }
  }
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::nanf("")))));
}

// The array forms (F16C where built for it) give what the scalar ones give.
TEST(Half, ArraysConvertLikeTheScalarFunctions) {
  std::vector<uint16_t> every(0x10000);
  for (uint32_t h = 0; h < 0x10000; ++h) every[h] = static_cast<uint16_t>(h);
  std::vector<float> floats(every.size());
  HalvesToFloats(every.data(), every.size(), floats.data());
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float want = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(floats[h]));
    } else {
      ASSERT_EQ(floats[h], want) << h;
    }
  }
  std::mt19937 rng(11);
  std::vector<float> x(100003);  // not a multiple of 8: the scalar tail too
  for (float& f : x) {
    uint32_t bits = rng();
    std::memcpy(&f, &bits, sizeof(f));
    if (std::isnan(f)) f = 1.0f;
    if (rng() % 2) f = std::ldexp(f, -std::ilogb(f) + static_cast<int>(rng() % 50) - 30);
  }
  x[5] = 65519.0f, x[6] = 65520.0f, x[7] = -1e30f, x[8] = std::ldexp(1.0f, -25);
  x[9] = std::ldexp(1.5f, -25), x[10] = std::numeric_limits<float>::infinity();
  std::vector<uint16_t> halves(x.size());
  FloatsToHalves(x.data(), x.size(), halves.data());
  for (size_t j = 0; j < x.size(); ++j) ASSERT_EQ(halves[j], FloatToHalf(x[j])) << x[j];
  const float nan = std::nanf("");
  uint16_t h[8];
  const float eight_nans[8] = {nan, nan, nan, nan, nan, nan, nan, nan};
  FloatsToHalves(eight_nans, 8, h);
  for (uint16_t one : h) EXPECT_TRUE(std::isnan(HalfToFloat(one)));
}

// A gradient shaped like the Fashion-MNIST MLP's first layer: 784 keys of
// dim 128, and a dim-1 table of 10 keys.
std::vector<TableKeys> Gradient(std::mt19937* rng) {
  std::normal_distribution<float> normal(0, 0.01f);
  std::vector<TableKeys> tables(2);
  tables[0].table = 0;
  for (uint64_t k = 0; k < 784; ++k) tables[0].keys.push_back(k);
  tables[0].values.resize(784 * 128);
  tables[1].table = 1;
  for (uint64_t k = 0; k < 10; ++k) tables[1].keys.push_back(k * 7);
  tables[1].values.resize(10);
  for (TableKeys& t : tables) {
    for (float& v : t.values) v = normal(*rng);
  }
  return tables;
}

const std::vector<TableSpec>& Specs() {
  static const std::vector<TableSpec> specs = [] {
    std::vector<TableSpec> s(2);
    s[0].id = 0, s[0].name = "layer0_weights", s[0].dim = 128;
    s[1].id = 1, s[1].name = "weights", s[1].dim = 1;
    return s;
  }();
  return specs;
}

CompressionOptions Options(rpc::Encoding e, float topk_ratio, bool error_feedback,
                           float momentum = 0) {
  CompressionOptions o;
  o.encodings = {e, e};
  o.topk_ratio = topk_ratio;
  o.error_feedback = error_feedback;
  o.momentum = momentum;
  return o;
}

// Encodes a push into one slice per table, as KvClient does.
std::vector<rpc::TableSlice> Encode(const GradientCompressor::Push& push,
                                    const std::vector<TableKeys>& tables) {
  std::vector<rpc::TableSlice> slices(tables.size());
  for (size_t t = 0; t < tables.size(); ++t) {
    slices[t].set_table(tables[t].table);
    const int dim = Specs()[tables[t].table].dim;
    for (size_t i = 0; i < tables[t].keys.size(); ++i) {
      slices[t].add_keys(tables[t].keys[i]);
      if (push.encoding(t) != rpc::FLOAT32) {
        push.AppendRow(t, i, dim, &slices[t]);
      } else if (const float* v = push.values(t); v != nullptr) {
        slices[t].mutable_values()->Add(v + i * dim, v + (i + 1) * dim);
      }
    }
    GradientCompressor::Push::FinishSlice(&slices[t]);
  }
  return slices;
}

size_t Float32Bytes(const std::vector<TableKeys>& tables) {
  size_t bytes = 0;
  for (const TableKeys& t : tables) {
    rpc::TableSlice s;
    for (uint64_t k : t.keys) s.add_keys(k);
    s.mutable_values()->Add(t.values.begin(), t.values.end());
    bytes += s.ByteSizeLong();
  }
  return bytes;
}

struct Case {
  rpc::Encoding encoding;
  double min_ratio;  // float32 bytes / encoded bytes, over both tables
  double max_error;  // of one push's decoded value, relative to the largest gradient
};

class Encodings : public ::testing::TestWithParam<Case> {};

// Decoding gives what the compressor says was sent; what was not sent is
// carried, so over many pushes the sums of sent and of true gradients
// differ by the last residual only; and the bytes shrink.
TEST_P(Encodings, DecodeWhatWasSentAndCarryTheRest) {
  const Case c = GetParam();
  GradientCompressor compressor(Options(c.encoding, 0.01f, /*error_feedback=*/true));
  ASSERT_TRUE(compressor.enabled());
  std::mt19937 rng(3);
  std::vector<double> truth(784 * 128, 0.0), sent(784 * 128, 0.0);
  double ratio = 0;
  for (int step = 0; step < 50; ++step) {
    const std::vector<TableKeys> g = Gradient(&rng);
    const GradientCompressor::Push push = compressor.Prepare(g);
    std::vector<rpc::TableSlice> slices = Encode(push, g);
    size_t encoded = 0;
    for (const auto& s : slices) encoded += s.ByteSizeLong();
    ratio = static_cast<double>(Float32Bytes(g)) / static_cast<double>(encoded);
    for (size_t t = 0; t < slices.size(); ++t) {
      ASSERT_TRUE(DecodeSlice(Specs()[t], 1 << 24, &slices[t]).ok());
      ASSERT_EQ(slices[t].values_size(), static_cast<int>(g[t].values.size()));
      EXPECT_EQ(slices[t].encoding(), rpc::FLOAT32);
      EXPECT_TRUE(slices[t].packed().empty());
    }
    for (size_t j = 0; j < truth.size(); ++j) {
      truth[j] += g[0].values[j];
      sent[j] += slices[0].values(static_cast<int>(j));
      if (c.encoding != rpc::TOPK) {
        EXPECT_NEAR(slices[0].values(static_cast<int>(j)), g[0].values[j], c.max_error) << j;
      }
    }
  }
  EXPECT_GE(ratio, c.min_ratio);
  // Error feedback: the sums differ by what is still carried, at most one
  // push's worth of dropped values for each (top-k carries more, longer).
  double worst = 0;
  for (size_t j = 0; j < truth.size(); ++j) worst = std::max(worst, std::abs(truth[j] - sent[j]));
  EXPECT_LT(worst, c.encoding == rpc::TOPK ? 0.5 : 1e-3) << "largest carried error";
}

INSTANTIATE_TEST_SUITE_P(Compression, Encodings,
                         ::testing::Values(Case{rpc::FP16, 1.9, 4e-5}, Case{rpc::INT8, 3.5, 4e-4},
                                           Case{rpc::TOPK, 20, 0}),
                         [](const auto& info) { return rpc::Encoding_Name(info.param.encoding); });

TEST(Compression, TheSameGradientsEncodeTheSameWay) {
  for (rpc::Encoding e : {rpc::FP16, rpc::INT8, rpc::TOPK}) {
    GradientCompressor a(Options(e, 0.01f, true)), b(Options(e, 0.01f, true));
    std::mt19937 r1(5), r2(5);
    for (int step = 0; step < 3; ++step) {
      const auto ga = Gradient(&r1), gb = Gradient(&r2);
      const auto sa = Encode(a.Prepare(ga), ga), sb = Encode(b.Prepare(gb), gb);
      for (size_t t = 0; t < sa.size(); ++t) {
        EXPECT_EQ(sa[t].SerializeAsString(), sb[t].SerializeAsString());
      }
    }
  }
}

TEST(Compression, TopKKeepsTheLargestValues) {
  GradientCompressor compressor(Options(rpc::TOPK, 0.25f, /*error_feedback=*/false));
  std::vector<TableKeys> g(1);
  g[0].table = 1;
  g[0].keys = {1, 2, 3, 4, 5, 6, 7, 8};
  g[0].values = {0.1f, -5, 0.2f, 3, -0.3f, 0.05f, 1, -0.01f};
  auto slices = Encode(compressor.Prepare(g), g);
  ASSERT_EQ(slices[0].positions_size(), 2);
  EXPECT_EQ(slices[0].positions(0), 1u);  // gaps: 1, then 3 - 1
  EXPECT_EQ(slices[0].positions(1), 2u);
  ASSERT_TRUE(DecodeSlice(Specs()[1], 100, &slices[0]).ok());
  const std::vector<float> want = {0, -5, 0, 3, 0, 0, 0, 0};
  EXPECT_EQ(std::vector<float>(slices[0].values().begin(), slices[0].values().end()), want);
}

// Momentum correction: what top-k holds back accumulates the key's velocity,
// not its gradient, and a value's velocity restarts once it is sent.
TEST(Compression, MomentumCorrectionAccumulatesVelocityAndMasksWhatWasSent) {
  GradientCompressor compressor(Options(rpc::TOPK, 0.5f, /*error_feedback=*/true,
                                        /*momentum=*/0.5f));
  std::vector<TableKeys> g(1);
  g[0].table = 1;
  g[0].keys = {4, 9};
  auto push = [&](float a, float b) {
    g[0].values = {a, b};
    auto slices = Encode(compressor.Prepare(g), g);
    EXPECT_TRUE(DecodeSlice(Specs()[1], 100, &slices[0]).ok());
    return std::vector<float>(slices[0].values().begin(), slices[0].values().end());
  };
  // u = (10, 1): key 4 goes; key 9 keeps its 1 and its velocity 1.
  EXPECT_EQ(push(10, 1), (std::vector<float>{10, 0}));
  // u = (0 [masked], 0.5): key 9 sends its carried 1 plus its velocity 0.5
  // (plain error feedback would send 1; an unmasked key 4 would send 5).
  EXPECT_EQ(push(0, 0), (std::vector<float>{0, 1.5f}));
  // Both velocities restarted: nothing left to send.
  EXPECT_EQ(push(0, 0), (std::vector<float>{0, 0}));
  // A dense encoding is momentum SGD: a constant gradient's velocity grows
  // 1, 1.5, 1.75 (exact in half precision) and each push sends all of it.
  GradientCompressor half(Options(rpc::FP16, 0.01f, true, 0.5f));
  for (float want : {1.0f, 1.5f, 1.75f}) {
    g[0].values = {1, 1};
    auto slices = Encode(half.Prepare(g), g);
    ASSERT_TRUE(DecodeSlice(Specs()[1], 100, &slices[0]).ok());
    EXPECT_EQ(std::vector<float>(slices[0].values().begin(), slices[0].values().end()),
              (std::vector<float>{want, want}));
  }
}

// A TOPK table below compression.topk_dense_below goes whole, as float32,
// with its velocity kept (no masking: it would stop the momentum).
TEST(Compression, SmallTopKTablesGoWholeWithTheirMomentum) {
  CompressionOptions options = Options(rpc::TOPK, 0.01f, true, 0.5f);
  options.whole = {false, true};
  GradientCompressor compressor(options);
  std::vector<TableKeys> g(1);
  g[0].table = 1;
  g[0].keys = {4, 9, 11};
  for (float want : {1.0f, 1.5f, 1.75f}) {
    g[0].values = {1, -1, 0};
    const GradientCompressor::Push push = compressor.Prepare(g);
    EXPECT_EQ(push.encoding(0), rpc::FLOAT32);
    auto slices = Encode(push, g);
    EXPECT_FALSE(IsEncoded(slices[0]));
    EXPECT_EQ(std::vector<float>(slices[0].values().begin(), slices[0].values().end()),
              (std::vector<float>{want, -want, 0}));
  }

  config::JobConfig job;
  job.mutable_model()->set_type(config::MLP);
  job.mutable_model()->set_num_features(784);
  job.mutable_model()->add_hidden_units(128);
  job.mutable_model()->set_num_classes(10);
  job.mutable_compression()->set_type(config::TOPK);
  for (uint32_t below : {4096u, 0u}) {
    job.mutable_compression()->set_topk_dense_below(below);
    auto o = CompressionOptionsFor(job, TablesForJob(job));
    ASSERT_TRUE(o.ok()) << o.status();
    for (const TableSpec& t : TablesForJob(job)) {
      if (t.statistics) continue;
      // 784 x 128 weights stay top-k; 128 x 10 weights and the biases go whole.
      EXPECT_EQ(o->whole[t.id], below > 0 && t.name != "layer0_weights") << t.name;
    }
  }
}

TEST(Compression, MomentumCorrectionNeedsPlainSgdAndEveryTableCompressed) {
  config::JobConfig job;
  job.mutable_model()->set_type(config::LOGISTIC_REGRESSION);
  job.mutable_model()->set_num_features(10);
  job.mutable_data()->set_train_path("train.libsvm");
  job.mutable_compression()->set_type(config::TOPK);
  job.mutable_compression()->set_momentum(0.9f);
  job.mutable_optimizer()->set_type(config::SGD);
  EXPECT_TRUE(ValidateJobConfig(job, "job.yaml").ok());
  job.mutable_optimizer()->set_type(config::ADAM);
  absl::Status s = ValidateJobConfig(job, "job.yaml");
  EXPECT_TRUE(absl::StrContains(s.message(), "compression.momentum")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "optimizer.type: sgd (it is adam)")) << s;
  job.mutable_optimizer()->set_type(config::SGD);
  auto* t = job.mutable_compression()->add_tables();
  t->set_table("bias");
  t->set_type(config::NO_COMPRESSION);
  s = ValidateJobConfig(job, "job.yaml");
  EXPECT_TRUE(absl::StrContains(s.message(), "table 'bias' is not compressed")) << s;
  job.mutable_compression()->clear_tables();
  job.mutable_compression()->set_error_feedback(false);
  s = ValidateJobConfig(job, "job.yaml");
  EXPECT_TRUE(absl::StrContains(s.message(), "compression.error_feedback: true")) << s;
}

// A NaN in a gradient reaches the server as a NaN (which refuses it), not
// as a number the encoding made up.
TEST(Compression, ANanStaysANan) {
  for (rpc::Encoding e : {rpc::FP16, rpc::INT8, rpc::TOPK}) {
    GradientCompressor compressor(Options(e, 0.01f, true));
    std::mt19937 rng(1);
    std::vector<TableKeys> g = Gradient(&rng);
    g[0].values[300] = std::nanf("");
    auto slices = Encode(compressor.Prepare(g), g);
    ASSERT_TRUE(DecodeSlice(Specs()[0], 1 << 24, &slices[0]).ok());
    bool nan = false;
    for (float v : slices[0].values()) nan |= std::isnan(v);
    EXPECT_TRUE(nan) << rpc::Encoding_Name(e);
  }
}

TEST(Compression, MalformedSlicesAreRefusedNamingTheTable) {
  const TableSpec& spec = Specs()[0];  // dim 128
  auto slice = [] {
    rpc::TableSlice s;
    s.set_table(0);
    s.add_keys(1);
    s.add_keys(2);
    return s;
  };
  struct Bad {
    const char* what;
    std::function<void(rpc::TableSlice*)> make;
  };
  const std::vector<Bad> bad = {
      {"FP16: 256 values need 512 bytes, got 3",
       [](rpc::TableSlice* s) { s->set_encoding(rpc::FP16), s->set_packed("abc"); }},
      {"INT8: 3 scales for 2 keys",
       [](rpc::TableSlice* s) {
         s->set_encoding(rpc::INT8), s->set_packed(std::string(256, '\1'));
         for (int i = 0; i < 3; ++i) s->add_scales(1);
       }},
      {"INT8: 256 values need 256 bytes, got 10",
       [](rpc::TableSlice* s) { s->set_encoding(rpc::INT8), s->set_packed("0123456789"); }},
      {"TOPK: position 300 is beyond",
       [](rpc::TableSlice* s) {
         s->set_encoding(rpc::TOPK), s->add_positions(300), s->add_kept_values(1);
       }},
      {"TOPK: a position repeats",
       [](rpc::TableSlice* s) {
         s->set_encoding(rpc::TOPK), s->add_positions(3), s->add_kept_values(1);
         s->add_positions(0), s->add_kept_values(2);
       }},
      {"TOPK: 1 positions for 0 values",
       [](rpc::TableSlice* s) { s->set_encoding(rpc::TOPK), s->add_positions(3); }},
      {"both float32 values and an encoding",
       [](rpc::TableSlice* s) { s->set_encoding(rpc::FP16), s->add_values(1); }},
      {"compressed fields in a float32 slice", [](rpc::TableSlice* s) { s->add_scales(1); }},
      {"unknown encoding 9", [](rpc::TableSlice* s) { s->set_encoding(rpc::Encoding(9)); }},
  };
  for (const Bad& b : bad) {
    rpc::TableSlice s = slice();
    b.make(&s);
    const absl::Status st = DecodeSlice(spec, 1 << 20, &s);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << b.what;
    EXPECT_TRUE(absl::StrContains(st.message(), "table 'layer0_weights'")) << st;
    EXPECT_TRUE(absl::StrContains(st.message(), b.what)) << st;
  }
  // Keys that would decode to more values than allowed: refused before allocating.
  rpc::TableSlice huge;
  for (int i = 0; i < 1000; ++i) huge.add_keys(i);
  huge.set_encoding(rpc::TOPK);
  const absl::Status st = DecodeSlice(spec, 1000, &huge);
  EXPECT_TRUE(absl::StrContains(st.message(), "decode to more than 1000 values")) << st;
}

TEST(Compression, TheConfigNamesTablesOfTheModel) {
  config::JobConfig job;
  job.mutable_model()->set_type(config::LOGISTIC_REGRESSION);
  job.mutable_model()->set_num_features(10);
  job.mutable_data()->set_train_path("train.libsvm");
  job.mutable_compression()->set_type(config::INT8);
  auto* t = job.mutable_compression()->add_tables();
  t->set_table("bias");
  t->set_type(config::NO_COMPRESSION);
  auto encodings = TableEncodings(job, TablesForJob(job));
  ASSERT_TRUE(encodings.ok()) << encodings.status();
  EXPECT_EQ((*encodings)[kLrWeights], rpc::INT8);
  EXPECT_EQ((*encodings)[kLrBias], rpc::FLOAT32);
  for (const TableSpec& spec : TablesForJob(job)) {
    if (spec.statistics) {
      EXPECT_EQ((*encodings)[spec.id], rpc::FLOAT32) << spec.name;
    }
  }
  EXPECT_TRUE(ValidateJobConfig(job, "job.yaml").ok());
  t->set_table("layer0_weights");
  const absl::Status s = ValidateJobConfig(job, "job.yaml");
  EXPECT_TRUE(absl::StrContains(s.message(), "compression.tables[0].table")) << s;
  EXPECT_TRUE(
      absl::StrContains(s.message(), "no table 'layer0_weights' (its tables: weights, bias)"))
      << s;
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

TEST(AllFinite, FindsEveryNonFiniteValueAnywhere) {
  std::vector<float> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) - 500.0f;
  v[3] = std::numeric_limits<float>::max();
  v[4] = -std::numeric_limits<float>::max();
  v[5] = std::numeric_limits<float>::denorm_min();
  v[6] = -0.0f;
  EXPECT_TRUE(AllFinite(v.data(), v.size()));
  EXPECT_TRUE(AllFinite(v.data(), 0));
  for (float bad :
       {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
        std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN()}) {
    for (size_t at : {size_t{0}, size_t{15}, size_t{16}, size_t{517}, v.size() - 1}) {
      std::vector<float> w = v;
      w[at] = bad;
      EXPECT_FALSE(AllFinite(w.data(), w.size())) << bad << " at " << at;
      EXPECT_TRUE(AllFinite(w.data(), at)) << "only the values before " << at;
    }
  }
}

}  // namespace
}  // namespace ps
