#include "server/optimizer.h"

#include <Eigen/Core>
#include <cmath>

#include "common/partitioning.h"

namespace ps {
namespace {

using Vec = Eigen::Map<Eigen::ArrayXf>;
using ConstVec = Eigen::Map<const Eigen::ArrayXf>;

// The gradient with the L2 penalty's term, scale * grad + l2 * w, as an Eigen
// expression: evaluated coefficient by coefficient where it is used, never
// materialized (a 16 MiB value would otherwise cost a 16 MiB temporary).
#define PS_GRADIENT (scale * ConstVec(grad, dim) + l2_ * Vec(value, dim))

class Sgd final : public Optimizer {
 public:
  explicit Sgd(const TableSpec& t) : lr_(t.optimizer.learning_rate()), l2_(t.l2) {}
  int num_slots() const override { return 0; }
  void Update(int dim, const float* grad, float scale, float* value, float*,
              uint32_t* step) const override {
    Vec w(value, dim);
    w -= lr_ * PS_GRADIENT;
    ++*step;
  }

 private:
  float lr_, l2_;
};

class Momentum final : public Optimizer {
 public:
  explicit Momentum(const TableSpec& t)
      : lr_(t.optimizer.learning_rate()), mu_(t.optimizer.momentum()),
        nesterov_(t.optimizer.nesterov()), l2_(t.l2) {}
  int num_slots() const override { return 1; }
  void Update(int dim, const float* grad, float scale, float* value, float* slots,
              uint32_t* step) const override {
    Vec w(value, dim), v(slots, dim);
    if (nesterov_) {
      // w -= lr (g + mu v_new), v_new = mu v + g; element-wise, so each
      // coefficient reads the old w before it is written.
      v = mu_ * v + PS_GRADIENT;
      w -= lr_ * (PS_GRADIENT + mu_ * v);
    } else {
      v = mu_ * v + PS_GRADIENT;
      w -= lr_ * v;
    }
    ++*step;
  }

 private:
  float lr_, mu_;
  bool nesterov_;
  float l2_;
};

class AdaGrad final : public Optimizer {
 public:
  explicit AdaGrad(const TableSpec& t)
      : lr_(t.optimizer.learning_rate()), eps_(t.optimizer.epsilon()),
        init_(t.optimizer.initial_accumulator()), l2_(t.l2) {}
  int num_slots() const override { return 1; }
  float slot_init() const override { return init_; }
  void Update(int dim, const float* grad, float scale, float* value, float* slots,
              uint32_t* step) const override {
    Vec w(value, dim), h(slots, dim);
    h += PS_GRADIENT.square();
    w -= lr_ * PS_GRADIENT / (h.sqrt() + eps_);
    ++*step;
  }

 private:
  float lr_, eps_, init_, l2_;
};

// Adam, AdamW (decoupled weight decay) and Adamax (infinity norm), with
// per-key bias correction (the key's own step count, as lazy Adam does).
class AdamFamily final : public Optimizer {
 public:
  AdamFamily(const TableSpec& t, config::OptimizerType type)
      : type_(type), lr_(t.optimizer.learning_rate()), b1_(t.optimizer.beta1()),
        b2_(t.optimizer.beta2()), eps_(t.optimizer.epsilon()),
        wd_(t.optimizer.weight_decay()), l2_(t.l2) {}
  int num_slots() const override { return 2; }
  void Update(int dim, const float* grad, float scale, float* value, float* slots,
              uint32_t* step) const override {
    Vec w(value, dim), m(slots, dim), v(slots + dim, dim);
    const uint32_t t = ++*step;
    const float bc1 = 1.0f - std::pow(b1_, static_cast<float>(t));
    // m and v read the gradient (and so w) before w changes below.
    m = b1_ * m + (1.0f - b1_) * PS_GRADIENT;
    if (type_ == config::ADAMAX) {
      v = (b2_ * v).max(PS_GRADIENT.abs());
      w -= (lr_ / bc1) * m / (v + eps_);
      return;
    }
    const float bc2 = 1.0f - std::pow(b2_, static_cast<float>(t));
    v = b2_ * v + (1.0f - b2_) * PS_GRADIENT.square();
    if (type_ == config::ADAMW) w -= lr_ * wd_ * w;
    w -= lr_ * (m / bc1) / ((v / bc2).sqrt() + eps_);
  }

 private:
  config::OptimizerType type_;
  float lr_, b1_, b2_, eps_, wd_, l2_;
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
    default:
      return std::make_unique<Sgd>(table);
  }
}

void InitializeRow(const TableSpec& table, uint64_t seed, uint64_t key, float* values) {
  SplitMix64 rng(Mix64(seed ^ Mix64(key) ^ (static_cast<uint64_t>(table.id) << 32)));
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
      default:
        values[i] = 0.0f;
    }
  }
}

}  // namespace ps
