#include "server/optimizer.h"

#include <Eigen/Core>
#include <cmath>
#include <limits>
#include <vector>

#include "common/partitioning.h"

namespace ps {
namespace {

using Vec = Eigen::Map<Eigen::ArrayXf>;
using ConstVec = Eigen::Map<const Eigen::ArrayXf>;

// The gradient with the L2 penalty's term, scale * grad + l2 * w, as an Eigen
// expression: evaluated coefficient by coefficient where it is used, never
// materialized (a 16 MiB value would otherwise cost a 16 MiB temporary).
#define PS_GRADIENT (scale * ConstVec(grad, dim) + l2_ * Vec(value, dim))

// The proximal step of the L1 penalty: soft-thresholding by lr * l1.
void SoftThreshold(int dim, float threshold, float* value) {
  if (threshold <= 0) return;
  Vec w(value, dim);
  w = w.sign() * (w.abs() - threshold).max(0.0f);
}

class Sgd final : public Optimizer {
 public:
  explicit Sgd(const TableSpec& t) : lr_(t.optimizer.learning_rate()), l2_(t.l2), l1_(t.l1) {}
  int num_slots() const override { return 0; }
  void Update(int dim, const float* grad, float scale, float lr_scale, float* value, float*,
              uint32_t* step, int slot_stride) const override {
    const float lr = lr_ * lr_scale;
    Vec w(value, dim);
    w -= lr * PS_GRADIENT;
    SoftThreshold(dim, lr * l1_, value);
    ++*step;
  }

 private:
  float lr_, l2_, l1_;
};

class Momentum final : public Optimizer {
 public:
  explicit Momentum(const TableSpec& t)
      : lr_(t.optimizer.learning_rate()), mu_(t.optimizer.momentum()),
        nesterov_(t.optimizer.nesterov()), l2_(t.l2), l1_(t.l1) {}
  int num_slots() const override { return 1; }
  void Update(int dim, const float* grad, float scale, float lr_scale, float* value, float* slots,
              uint32_t* step, int slot_stride) const override {
    const float lr = lr_ * lr_scale;
    Vec w(value, dim), v(slots, dim);
    // Element-wise: each coefficient reads the old w before it is written.
    v = mu_ * v + PS_GRADIENT;
    if (nesterov_) {
      w -= lr * (PS_GRADIENT + mu_ * v);
    } else {
      w -= lr * v;
    }
    SoftThreshold(dim, lr * l1_, value);
    ++*step;
  }

 private:
  float lr_, mu_;
  bool nesterov_;
  float l2_, l1_;
};

class AdaGrad final : public Optimizer {
 public:
  explicit AdaGrad(const TableSpec& t)
      : lr_(t.optimizer.learning_rate()), eps_(t.optimizer.epsilon()),
        init_(t.optimizer.initial_accumulator()), l2_(t.l2), l1_(t.l1) {}
  int num_slots() const override { return 1; }
  float slot_init() const override { return init_; }
  void Update(int dim, const float* grad, float scale, float lr_scale, float* value, float* slots,
              uint32_t* step, int slot_stride) const override {
    const float lr = lr_ * lr_scale;
    // A plain loop (vectorized by the compiler, -fno-math-errno): Eigen
    // leaves an expression with sqrt scalar without EIGEN_FAST_MATH.
    for (int i = 0; i < dim; ++i) {
      const float g = scale * grad[i] + l2_ * value[i];
      slots[i] += g * g;
      value[i] -= lr * g / (std::sqrt(slots[i]) + eps_);
    }
    SoftThreshold(dim, lr * l1_, value);
    ++*step;
  }

 private:
  float lr_, eps_, init_, l2_, l1_;
};

// Adam, AdamW (decoupled weight decay) and Adamax (infinity norm), with
// per-key bias correction (the key's own step count, as lazy Adam does).
class AdamFamily final : public Optimizer {
 public:
  AdamFamily(const TableSpec& t, config::OptimizerType type)
      : type_(type),
        lr_(t.optimizer.learning_rate()),
        b1_(t.optimizer.beta1()),
        b2_(t.optimizer.beta2()),
        eps_(t.optimizer.epsilon()),
        wd_(t.optimizer.weight_decay()),
        l2_(t.l2),
        l1_(t.l1) {
    // 1 - beta^t for the first steps, as std::pow gives them: a key of dim 1
    // would otherwise spend most of its update in two pow calls.
    bc1_.resize(kCachedSteps);
    bc2_.resize(kCachedSteps);
    for (uint32_t t = 0; t < kCachedSteps; ++t) {
      bc1_[t] = 1.0f - std::pow(b1_, static_cast<float>(t));
      bc2_[t] = 1.0f - std::pow(b2_, static_cast<float>(t));
    }
  }
  int num_slots() const override { return 2; }
  void Update(int dim, const float* grad, float scale, float lr_scale, float* value, float* slots,
              uint32_t* step, int slot_stride) const override {
    const float lr = lr_ * lr_scale;
    float* m = slots;
    float* v = slots + slot_stride;
    const uint32_t t = ++*step;
    const float bc1 = t < kCachedSteps ? bc1_[t] : 1.0f - std::pow(b1_, static_cast<float>(t));
    // Plain loops, vectorized by the compiler (-fno-math-errno): Eigen leaves
    // an expression with sqrt scalar without EIGEN_FAST_MATH. m and v read
    // the gradient (and so w) before w changes.
    if (type_ == config::ADAMAX) {
      const float step_size = lr / bc1;
      for (int i = 0; i < dim; ++i) {
        const float g = scale * grad[i] + l2_ * value[i];
        m[i] = b1_ * m[i] + (1.0f - b1_) * g;
        v[i] = std::max(b2_ * v[i], std::abs(g));
        value[i] -= step_size * m[i] / (v[i] + eps_);
      }
    } else {
      const float bc2 = t < kCachedSteps ? bc2_[t] : 1.0f - std::pow(b2_, static_cast<float>(t));
      // lr * (m / bc1) / (sqrt(v / bc2) + eps) with one division and one
      // sqrt per coefficient: the three divisions the textbook form has made
      // the loop divider-bound (0.10 of an axpy's rate with AVX-512).
      const float step_size = lr / bc1;
      const float inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
      const float decay = type_ == config::ADAMW ? lr * wd_ : 0.0f;
      for (int i = 0; i < dim; ++i) {
        const float g = scale * grad[i] + l2_ * value[i];
        m[i] = b1_ * m[i] + (1.0f - b1_) * g;
        v[i] = b2_ * v[i] + (1.0f - b2_) * (g * g);
        const float w = type_ == config::ADAMW ? value[i] - decay * value[i] : value[i];
        value[i] = w - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps_);
      }
    }
    SoftThreshold(dim, lr * l1_, value);
  }

 private:
  // Small: every ServerCore builds its optimizers (fuzz targets, one per input).
  static constexpr uint32_t kCachedSteps = 1024;
  config::OptimizerType type_;
  float lr_, b1_, b2_, eps_, wd_, l2_, l1_;
  std::vector<float> bc1_, bc2_;  // [t] = 1 - beta^t, t < kCachedSteps
};

// FTRL-proximal (McMahan et al. 2013), per coordinate: slots z and n; the
// weight is a closed form of them, with its own L1 and L2.
class Ftrl final : public Optimizer {
 public:
  explicit Ftrl(const TableSpec& t)
      : alpha_(t.optimizer.learning_rate()), beta_(t.optimizer.ftrl_beta()), l1_(t.l1),
        l2_(t.l2) {}
  int num_slots() const override { return 2; }
  void Update(int dim, const float* grad, float scale, float lr_scale, float* value, float* slots,
              uint32_t* step, int slot_stride) const override {
    const float alpha = alpha_ * lr_scale;
    float* z = slots;
    float* n = slots + slot_stride;
    for (int i = 0; i < dim; ++i) {
      const float g = scale * grad[i];
      const float n_new = n[i] + g * g;
      const float sigma = alpha > 0 ? (std::sqrt(n_new) - std::sqrt(n[i])) / alpha : 0.0f;
      z[i] += g - sigma * value[i];
      n[i] = n_new;
      if (std::abs(z[i]) <= l1_ || alpha <= 0) {
        value[i] = 0.0f;
      } else {
        const float sign = z[i] < 0 ? -1.0f : 1.0f;
        value[i] = -(z[i] - sign * l1_) / ((beta_ + std::sqrt(n[i])) / alpha + l2_);
      }
    }
    ++*step;
  }

 private:
  float alpha_, beta_, l1_, l2_;
};

// Statistics tables: a push adds (present, missing, sum, sum of squares) and
// folds (min, max) in; with dim 1 it adds.
class Accumulate final : public Optimizer {
 public:
  int num_slots() const override { return 0; }
  void Update(int dim, const float* grad, float scale, float, float* value, float*, uint32_t* step,
              int slot_stride) const override {
    if (dim == 6) {
      for (int i = 0; i < 4; ++i) value[i] += scale * grad[i];
      value[4] = std::min(value[4], grad[4]);
      value[5] = std::max(value[5], grad[5]);
    } else {
      for (int i = 0; i < dim; ++i) value[i] += scale * grad[i];
    }
    ++*step;
  }
};

#undef PS_GRADIENT

// Standard normal from two uniforms (Box-Muller), deterministic everywhere.
float Normal(SplitMix64& rng) {
  const double u1 = 1.0 - rng.NextDouble();  // (0, 1]
  const double u2 = rng.NextDouble();
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
}

}  // namespace

std::unique_ptr<Optimizer> MakeOptimizer(const TableSpec& table) {
  if (table.statistics) return std::make_unique<Accumulate>();
  switch (table.optimizer.type()) {
    case config::SGD:
      return std::make_unique<Sgd>(table);
    case config::MOMENTUM:
      return std::make_unique<Momentum>(table);
    case config::ADAGRAD:
      return std::make_unique<AdaGrad>(table);
    case config::ADAM:
    case config::ADAMW:
    case config::ADAMAX:
      return std::make_unique<AdamFamily>(table, table.optimizer.type());
    case config::FTRL:
      return std::make_unique<Ftrl>(table);
    default:
      return std::make_unique<Sgd>(table);
  }
}

void InitializeRow(const TableSpec& table, uint64_t seed, uint64_t key, float* values) {
  if (table.statistics) {
    for (int i = 0; i < table.dim; ++i) values[i] = 0.0f;
    if (table.dim == 6) {
      values[4] = std::numeric_limits<float>::infinity();
      values[5] = -std::numeric_limits<float>::infinity();
    }
    return;
  }
  SplitMix64 rng(Mix64(seed ^ Mix64(key) ^ (static_cast<uint64_t>(table.id) << 32)));
  const double xavier = std::sqrt(6.0 / (table.fan_in + table.fan_out));
  const double he = std::sqrt(2.0 / table.fan_in);
  for (int i = 0; i < table.dim; ++i) {
    switch (table.init) {
      case config::CONSTANT:
        values[i] = table.init_value;
        break;
      case config::UNIFORM:
        values[i] = static_cast<float>((2.0 * rng.NextDouble() - 1.0) * table.init_scale);
        break;
      case config::NORMAL:
        values[i] = Normal(rng) * table.init_scale;
        break;
      case config::XAVIER:
        values[i] = static_cast<float>((2.0 * rng.NextDouble() - 1.0) * xavier);
        break;
      case config::HE:
        values[i] = static_cast<float>(Normal(rng) * he);
        break;
      default:
        values[i] = 0.0f;
    }
  }
}

}  // namespace ps
