#include "bench/server_bench.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>

#include "Eigen/Core"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/partitioning.h"
#include "common/sync.h"
#include "common/tables.h"
#include "server/optimizer.h"
#include "server/partition.h"
#include "server/server_core.h"

namespace ps::bench {
namespace {

config::JobConfig Job(config::Mode mode, config::ModelType model, config::OptimizerType opt,
                      int partitions) {
  config::JobConfig job;
  job.mutable_job()->set_mode(mode);
  job.mutable_job()->set_seed(42);
  job.mutable_job()->set_output_dir(absl::StrCat("/tmp/ps_bench_server-", getpid()));
  job.mutable_cluster()->set_num_partitions(partitions);
  job.mutable_model()->set_type(model);
  job.mutable_optimizer()->set_type(opt);
  job.mutable_optimizer()->set_learning_rate(0.001f);
  return job;
}

rpc::ClusterView View(int partitions, int workers) {
  rpc::ClusterView view;
  view.set_version(1);
  for (int p = 0; p < partitions; ++p) view.add_partition_owner(0);
  for (int w = 0; w < workers; ++w) view.add_live_workers(w);
  return view;
}

// No backups: a push is acknowledged before Push returns; the wait is a guard.
absl::Status PushNow(ServerCore& core, const rpc::PushRequest& req) {
  rpc::PushResponse resp;
  Notification done;
  absl::Status status;
  core.Push(&req, &resp, absl::Now() + absl::Seconds(60), [&](absl::Status s) {
    status = s;
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(60))) {
    return absl::DeadlineExceededError("push not acknowledged");
  }
  return status;
}

uint64_t ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// Runs `step` (which handles `floats` floats) until max_seconds pass, at
// least 3 times; floats per second.
template <typename Step>
absl::StatusOr<double> Rate(double max_seconds, uint64_t floats, Step step) {
  if (absl::Status s = step(); !s.ok()) return s;  // warm-up
  const absl::Time start = absl::Now();
  uint64_t n = 0;
  double elapsed = 0;
  do {
    if (absl::Status s = step(); !s.ok()) return s;
    ++n;
    elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  } while (n < 3 || elapsed < max_seconds);
  return static_cast<double>(n * floats) / elapsed;
}

struct ApplyRow {
  std::string what;
  uint64_t floats;
  double rate = 0, axpy = 0;
};

double AxpyRate(double max_seconds, uint64_t floats) {
  Eigen::VectorXf x = Eigen::VectorXf::Random(static_cast<Eigen::Index>(floats));
  Eigen::VectorXf y = Eigen::VectorXf::Zero(static_cast<Eigen::Index>(floats));
  auto rate = Rate(max_seconds, floats, [&] {
    y.noalias() += 0.5f * x;
    return absl::OkStatus();
  });
  volatile float sink = y.sum();  // the adds are used: not optimized away
  (void)sink;
  return *rate;
}

// ASP pushes of `keys` keys of `table` (the same keys every time).
absl::StatusOr<ApplyRow> AspApply(const std::string& what, config::OptimizerType opt,
                                  uint32_t table, int keys, double max_seconds) {
  ServerCore core(Job(config::ASP, config::BENCHMARK, opt, 64), 0);
  core.UpdateView(View(64, 1));
  const int dim = TablesForJob(Job(config::ASP, config::BENCHMARK, opt, 64))[table].dim;
  rpc::PushRequest req;
  req.set_worker(0);
  req.set_incarnation(1);
  req.set_num_examples(1);
  rpc::TableSlice* s = req.add_slices();
  s->set_table(table);
  std::mt19937_64 rng(1);
  for (int k = 0; k < keys; ++k) s->add_keys(keys == 1 ? 0 : rng());
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t i = 0; i < static_cast<int64_t>(keys) * dim; ++i) s->add_values(u(rng));
  ApplyRow row{what, static_cast<uint64_t>(keys) * dim};
  uint64_t seq = 0;
  auto rate = Rate(max_seconds, row.floats, [&] {
    req.set_seq(++seq);
    return PushNow(core, req);
  });
  if (!rate.ok()) return rate.status();
  row.rate = *rate;
  core.Shutdown();
  return row;
}

// BSP: 2 workers push `keys` keys each per clock; the second push applies it.
absl::StatusOr<ApplyRow> BspApply(const std::string& what, uint32_t table, int keys,
                                  double max_seconds) {
  const config::JobConfig job = Job(config::BSP, config::BENCHMARK, config::SGD, 64);
  ServerCore core(job, 0);
  core.UpdateView(View(64, 2));
  const int dim = TablesForJob(job)[table].dim;
  rpc::PushRequest req[2];
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<uint64_t> key_set;
  for (int k = 0; k < keys; ++k) key_set.push_back(keys == 1 ? 0 : rng());
  for (int w = 0; w < 2; ++w) {
    req[w].set_worker(w);
    req[w].set_incarnation(1);
    req[w].set_num_examples(1);
    rpc::TableSlice* s = req[w].add_slices();
    s->set_table(table);
    for (uint64_t k : key_set) s->add_keys(k);
    for (int64_t i = 0; i < static_cast<int64_t>(keys) * dim; ++i) s->add_values(u(rng));
  }
  ApplyRow row{what, 2 * static_cast<uint64_t>(keys) * dim};
  int64_t clock = 0;
  auto rate = Rate(max_seconds, row.floats, [&]() -> absl::Status {
    for (int w = 0; w < 2; ++w) {
      req[w].set_clock(clock);
      req[w].set_seq(static_cast<uint64_t>(clock) + 1);
      if (absl::Status s = PushNow(core, req[w]); !s.ok()) return s;
    }
    ++clock;
    return absl::OkStatus();
  });
  if (!rate.ok()) return rate.status();
  row.rate = *rate;
  core.Shutdown();
  return row;
}

// Microseconds per BSP clock of `workers` simulated workers on `partitions`
// partitions: each pushes 64 keys of logistic regression at clock c covering
// every partition, then pulls them at c + 1 (parked until the last push).
absl::StatusOr<double> ClockCost(int workers, int partitions, double max_seconds) {
  const config::JobConfig job =
      Job(config::BSP, config::LOGISTIC_REGRESSION, config::ADAM, partitions);
  ServerCore core(job, 0);
  core.UpdateView(View(partitions, workers));
  std::mt19937_64 rng(3);
  std::vector<rpc::PushRequest> push(workers);
  std::vector<rpc::PullRequest> pull(workers);
  std::vector<rpc::PullResponse> reply(workers);
  for (int w = 0; w < workers; ++w) {
    push[w].set_worker(w);
    push[w].set_incarnation(1);
    push[w].set_num_examples(32);
    // As a worker does: covers every partition of the server (the view's, version 1).
    push[w].set_map_version(1);
    push[w].set_all_partitions(true);
    rpc::TableSlice* s = push[w].add_slices();
    s->set_table(kLrWeights);
    pull[w].set_worker(w);
    rpc::TableSlice* q = pull[w].add_slices();
    q->set_table(kLrWeights);
    for (int k = 0; k < 64; ++k) {
      const uint64_t key = rng() % 100000;
      s->add_keys(key);
      s->add_values(0.01f);
      q->add_keys(key);
    }
  }
  int64_t clock = 0;
  std::vector<int> served(workers);
  auto one_clock = [&]() -> absl::Status {
    std::fill(served.begin(), served.end(), 0);
    absl::Status failed;
    for (int w = 0; w < workers; ++w) {
      push[w].set_clock(clock);
      push[w].set_seq(static_cast<uint64_t>(clock) + 1);
      if (absl::Status s = PushNow(core, push[w]); !s.ok()) return s;
      pull[w].set_clock(clock + 1);
      core.Pull(&pull[w], &reply[w], absl::Now() + absl::Seconds(60), [&, w](absl::Status s) {
        if (!s.ok()) failed = s;
        served[w] = 1;
      });
    }
    ++clock;
    // The last push opened every gate: each pull was answered in a push's
    // thread before it returned.
    for (int w = 0; w < workers; ++w) {
      if (served[w] == 0) return absl::InternalError("a pull at a closed clock was not answered");
    }
    return failed;
  };
  auto rate = Rate(max_seconds, 1, one_clock);
  core.Shutdown();
  if (!rate.ok()) return rate.status();
  return 1e6 / *rate;
}

struct MemoryRow {
  int dim;
  uint64_t keys;
  double rss_per_key, store_per_key, state_per_key;
};

// `keys` keys of dim `dim` with Adam in 64 partitions (as a server holding
// them all), each created by an ASP push as training does.
MemoryRow Memory(int dim, uint64_t keys) {
  TableSpec spec;
  spec.dim = dim;
  spec.optimizer.set_type(config::ADAM);
  spec.optimizer.set_learning_rate(0.001f);
  const std::vector<TableSpec> tables{spec};
  std::vector<std::unique_ptr<Optimizer>> optimizers;
  optimizers.push_back(MakeOptimizer(spec));
  const int num_partitions = 64;
  const uint64_t before = ResidentBytes();
  std::vector<std::unique_ptr<Partition>> parts;
  for (int p = 0; p < num_partitions; ++p) {
    parts.push_back(std::make_unique<Partition>(p, &tables, &optimizers, 42));
  }
  const uint64_t batch = std::max<uint64_t>(1024, (uint64_t{1} << 18) / dim);
  std::mt19937_64 rng(5);
  std::vector<rpc::PushRequest> reqs(num_partitions);
  for (uint64_t done = 0, seq = 1; done < keys; done += batch, ++seq) {
    for (auto& r : reqs) {
      r.Clear();
      r.set_worker(0);
      r.set_incarnation(1);
      r.set_seq(seq);
      r.set_num_examples(1);
      r.add_slices()->set_table(0);
    }
    for (uint64_t i = done; i < std::min(keys, done + batch); ++i) {
      const uint64_t key = rng();
      rpc::TableSlice* s = reqs[PartitionOf(0, key, num_partitions)].mutable_slices(0);
      s->add_keys(key);
      for (int d = 0; d < dim; ++d) s->add_values(0.5f);
    }
    for (int p = 0; p < num_partitions; ++p) {
      parts[p]->Push(reqs[p], AllKeys(reqs[p]), false, {}, nullptr);
    }
  }
  reqs.clear();
  reqs.shrink_to_fit();
  const uint64_t after = ResidentBytes();
  uint64_t store = 0, stored = 0;
  for (const auto& p : parts) {
    store += p->StoreBytes();
    stored += p->num_keys();
  }
  MemoryRow row;
  row.dim = dim;
  row.keys = stored;
  row.rss_per_key = static_cast<double>(after - std::min(after, before)) / stored;
  row.store_per_key = static_cast<double>(store) / stored;
  row.state_per_key = 8.0 + 4.0 + 3.0 * 4 * dim;  // key, step, value and 2 moments
  return row;
}

// Memory() in a child process, so that what one measurement freed does not
// lower the next one's resident growth.
absl::StatusOr<MemoryRow> MemoryInChild(int dim, uint64_t keys) {
  int fds[2];
  if (pipe(fds) != 0) return absl::InternalError("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    close(fds[0]);
    const MemoryRow row = Memory(dim, keys);
    const ssize_t n = write(fds[1], &row, sizeof(row));
    _exit(n == static_cast<ssize_t>(sizeof(row)) ? 0 : 1);
  }
  close(fds[1]);
  MemoryRow row{};
  size_t got = 0;
  while (got < sizeof(row)) {
    const ssize_t n = read(fds[0], reinterpret_cast<char*>(&row) + got, sizeof(row) - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != sizeof(row) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("the memory measurement of dim ", dim, " failed"));
  }
  return row;
}

}  // namespace

absl::StatusOr<std::string> RunServerBench(const ServerBenchOptions& o) {
  std::string out =
      "ps_bench --server: the server's own costs in this process (ServerCore and Partition, "
      "no network)\n\n";
  // Memory.
  if (o.memory_keys > 0) {
    out += absl::StrFormat(
        "memory per stored key: %d random keys, Adam, 64 partitions; state = key 8 B + step 4 B "
        "+ value and 2 moments\n",
        o.memory_keys);
    out += absl::StrFormat("%-4s | %10s | %12s | %12s | %12s | %s\n", "dim", "keys", "state B",
                           "resident B", "store B", "resident / state");
    for (int dim : o.memory_dims) {
      auto row = MemoryInChild(dim, o.memory_keys);
      if (!row.ok()) return row.status();
      const MemoryRow& m = *row;
      out += absl::StrFormat("%-4d | %10d | %12.1f | %12.1f | %12.1f | %.2f\n", m.dim, m.keys,
                             m.state_per_key, m.rss_per_key, m.store_per_key,
                             m.rss_per_key / m.state_per_key);
    }
    out += "\n";
  }
  // Apply rate.
  if (o.apply_rates) {
    std::vector<ApplyRow> rows;
    auto add = [&](absl::StatusOr<ApplyRow> r) -> absl::Status {
      if (!r.ok()) return r.status();
      r->axpy = AxpyRate(o.max_seconds, r->floats);
      rows.push_back(*r);
      return absl::OkStatus();
    };
    if (auto s = add(AspApply("asp sgd, 1 key x 262144 (1 MiB)", config::SGD, kBenchDense1M, 1,
                              o.max_seconds));
        !s.ok())
      return s;
    if (auto s = add(AspApply("asp adam, 1 key x 262144 (1 MiB)", config::ADAM, kBenchDense1M, 1,
                              o.max_seconds));
        !s.ok())
      return s;
    if (auto s = add(
            AspApply("asp sgd, 10000 keys x 8", config::SGD, kBenchSparse, 10000, o.max_seconds));
        !s.ok())
      return s;
    if (auto s =
            add(BspApply("bsp sgd, 2 workers x 1 key x 262144", kBenchDense1M, 1, o.max_seconds));
        !s.ok())
      return s;
    if (auto s = add(
            BspApply("bsp sgd, 2 workers x 10000 keys x 8", kBenchSparse, 10000, o.max_seconds));
        !s.ok())
      return s;
    out +=
        "apply rate: pushes through ServerCore::Push (validation, routing, optimizer), against "
        "an Eigen axpy (y += a x) over as many floats, same run\n";
    out += absl::StrFormat("%-40s | %14s | %14s | %s\n", "push", "floats/s", "axpy floats/s",
                           "push / axpy");
    for (const ApplyRow& r : rows) {
      out += absl::StrFormat("%-40s | %14.0f | %14.0f | %.2f\n", r.what, r.rate, r.axpy,
                             r.rate / r.axpy);
    }
  }
  // Cost growth.
  out +=
      "\ncost growth: microseconds per BSP clock (each worker: a push of 64 keys covering every "
      "partition, a pull at the next clock)\n";
  out += absl::StrFormat("%-8s | %-10s | %12s | %s\n", "workers", "partitions", "us / clock",
                         "vs first row");
  double first = 0;
  for (int w : o.growth_workers) {
    auto us = ClockCost(w, 64, o.max_seconds);
    if (!us.ok()) return us.status();
    if (first == 0) first = *us;
    out += absl::StrFormat("%-8d | %-10d | %12.1f | %.2f\n", w, 64, *us, *us / first);
  }
  first = 0;
  for (int p : o.growth_partitions) {
    auto us = ClockCost(4, p, o.max_seconds);
    if (!us.ok()) return us.status();
    if (first == 0) first = *us;
    out += absl::StrFormat("%-8d | %-10d | %12.1f | %.2f\n", 4, p, *us, *us / first);
  }
  return out;
}

}  // namespace ps::bench
