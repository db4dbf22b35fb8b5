// ps_bench: push and pull throughput against a live cluster, with raw TCP on
// loopback measured in the same run as the reference.
//
//   ps_bench --config bench/bench.yaml     starts its own cluster (scheduler +
//                                          servers as processes) and is its worker
//   ps_bench --scheduler HOST:PORT         joins a running BENCHMARK job as its
//                                          (single) worker
//
// Dense: one key per request of 4 KiB, 1 MiB, 4 MiB or 16 MiB (tables
// dense_4k, dense_1m, dense_4m, dense_16m; --dense_sizes picks them), (a)
// one request at a time, with its latency (mean, p50, p99), (b) --inflight
// requests in flight (threads,
// each with its own KvClient and pusher identity and its own keys). Sparse:
// batches of each of --sparse_keys random keys of tables sparse_1 (dim 1) and
// sparse (dim 8), one at a time.
// GB/s is payload bytes (values only) / wall seconds, 1 GB = 10^9 bytes.
// After the runs, every key pushed is pulled and checked against the
// gradients pushed (SGD: value = initial - lr * sum of gradients), so lost or
// doubled pushes fail the bench.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/server_bench.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/data_frame.h"
#include "common/file_util.h"
#include "common/flags_util.h"
#include "common/heartbeat.h"
#include "common/logging.h"
#include "common/net.h"
#include "common/partitioning.h"
#include "common/rpc.h"
#include "common/scheduler_client.h"
#include "common/signals.h"
#include "common/sync.h"
#include "common/tables.h"
#include "tools/local_cluster.h"
#include "worker/kv_client.h"

ABSL_FLAG(std::string, config, "", "job config (YAML): start a local cluster for it and bench it");
ABSL_FLAG(std::string, scheduler, "", "host:port of the scheduler of a running BENCHMARK job");
ABSL_FLAG(std::string, json, "", "also write the figures to this file");
ABSL_FLAG(std::string, bin_dir, "", "where ps_scheduler/ps_server are; default: next to ps_bench");
ABSL_FLAG(int, inflight, 8, "requests in flight in the concurrent dense runs (1..8)");
ABSL_FLAG(int, budget_mib, 256, "payload per measurement, MiB (a run also stops at --max_seconds)");
ABSL_FLAG(double, max_seconds, 2.0, "time cap per measurement");
ABSL_FLAG(std::vector<std::string>, sparse_keys,
          std::vector<std::string>({"1000", "10000", "100000"}),
          "keys per sparse push/pull, one run per count (and per dim: 1 and 8)");
ABSL_FLAG(std::vector<std::string>, dense_sizes,
          std::vector<std::string>({"4k", "1m", "4m", "16m"}),
          "dense request sizes to measure, of 4k, 1m, 4m, 16m (empty: none)");
ABSL_FLAG(int, connect_timeout_ms, 30000, "how long to wait for the scheduler");
ABSL_FLAG(std::string, log_level, "warn", "debug, info, warn or error");
ABSL_FLAG(double, count_seconds, 0,
          "exactly-once check instead of the bench: for this many seconds push +1 to random keys "
          "of the sparse table, counting acknowledged pushes per key, then check every key's "
          "value against its count (run it while killing servers)");
ABSL_FLAG(int, count_keys, 256, "keys the exactly-once check counts on");
ABSL_FLAG(bool, compare_grpc, true,
          "with the TCP data plane, also measure the dense runs over gRPC (same run, same "
          "servers) and print both");
ABSL_FLAG(bool, server, false,
          "measure the server's own costs in this process instead (bench/server_bench.h): apply "
          "rate against an Eigen axpy, cost per BSP clock as workers and partitions grow, memory "
          "per stored key; --max_seconds per measurement");
ABSL_FLAG(uint64_t, memory_keys, 10000000,
          "--server: keys stored for the memory figures (0: skip)");
ABSL_FLAG(std::vector<std::string>, growth_workers, std::vector<std::string>({"4", "16", "64"}),
          "--server: simulated workers per cost-growth row (at 64 partitions)");
ABSL_FLAG(bool, apply_rates, true, "--server: measure the apply rates against an axpy");
ABSL_FLAG(std::vector<std::string>, growth_partitions,
          std::vector<std::string>({"64", "1024", "8192"}),
          "--server: partitions per cost-growth row (at 4 workers)");
ABSL_FLAG(int, barrier_workers, 0,
          "with --config: instead of the data path, the scheduler's barriers: this many "
          "simulated workers (threads, each its own member with heartbeats) meet at "
          "--barrier_rounds barriers over gRPC; prints the release latency after the last arrival "
          "against a unary call's round trip (sets cluster.num_workers and security.insecure: "
          "the workers share this process's credentials)");
ABSL_FLAG(int, barrier_rounds, 200, "barriers for --barrier_workers");
ABSL_FLAG(bool, count_skew, false,
          "count only on keys whose partitions start on server 0 (a skewed load for rebalancing)");

namespace ps {
namespace {

constexpr int kDenseKeys = 8;  // distinct keys per dense table (16 MiB each for dense_16m)
constexpr int kSparseBatches = 4;
constexpr double kGB = 1e9;

// The bench's gradient: exact multiples of 2^-10, so sums of them stay exact
// in float and the spot check can compare for equality.
float Gradient(size_t i) { return static_cast<float>((i % 5) + 1) / 1024.0f; }

std::string SizeName(uint64_t bytes) {
  if (bytes >= (1 << 20)) return absl::StrCat(bytes >> 20, " MiB");
  return absl::StrCat(bytes >> 10, " KiB");
}

// ---------------------------------------------------------------------------
// Timed runs.

struct Rate {
  uint64_t ops = 0;
  uint64_t bytes = 0;  // payload
  double seconds = 0;
  double mean_us = 0, p50_us = 0, p99_us = 0;  // per op, as its caller saw it
  double gbps() const { return seconds > 0 ? bytes / seconds / kGB : 0; }
  double ops_per_s() const { return seconds > 0 ? ops / seconds : 0; }
};

// Set when the job failed, the scheduler is lost or a signal arrived.
class StopFlag {
 public:
  void Set(const std::string& why) {
    MutexLock lock(&mu_);
    if (why_.empty()) why_ = why;
    set_.store(true);
  }
  bool set() const { return set_.load() || StopRequested(); }
  std::string why() const {
    MutexLock lock(&mu_);
    return why_.empty() ? std::string("stopped by a signal") : why_;
  }

 private:
  std::atomic<bool> set_{false};
  mutable Mutex mu_;
  std::string why_ ABSL_GUARDED_BY(mu_);
};

// Runs op(thread, i) on `threads` threads until `budget` payload bytes were
// issued (each op moves op_bytes) or `max_time` passed; at least one op per
// thread. Returns the first error of any op.
absl::StatusOr<Rate> RunTimed(int threads, uint64_t op_bytes, uint64_t budget,
                              absl::Duration max_time, const StopFlag& stop,
                              const std::function<absl::Status(int, uint64_t)>& op) {
  std::atomic<uint64_t> issued{0};
  std::atomic<uint64_t> done_ops{0};
  Mutex mu;
  absl::Status first_error;
  std::vector<double> latencies_us ABSL_GUARDED_BY(mu);
  std::atomic<bool> failed{false};
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + max_time;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<double> mine;
      for (uint64_t i = 0;; ++i) {
        if (i > 0 && (issued.fetch_add(op_bytes) >= budget || absl::Now() >= deadline)) break;
        if (failed.load() || stop.set()) break;
        const absl::Time op_start = absl::Now();
        absl::Status s = op(t, i);
        if (!s.ok()) {
          MutexLock lock(&mu);
          if (first_error.ok()) first_error = s;
          failed.store(true);
          break;
        }
        mine.push_back(absl::ToDoubleMicroseconds(absl::Now() - op_start));
        done_ops.fetch_add(1);
      }
      MutexLock lock(&mu);
      latencies_us.insert(latencies_us.end(), mine.begin(), mine.end());
    });
  }
  for (std::thread& t : pool) t.join();
  Rate rate;
  rate.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (!first_error.ok()) return first_error;
  if (stop.set()) return absl::CancelledError(stop.why());
  rate.ops = done_ops.load();
  rate.bytes = rate.ops * op_bytes;
  MutexLock lock(&mu);
  if (!latencies_us.empty()) {
    std::sort(latencies_us.begin(), latencies_us.end());
    double sum = 0;
    for (double l : latencies_us) sum += l;
    rate.mean_us = sum / latencies_us.size();
    auto at = [&](double q) {
      return latencies_us[std::min(latencies_us.size() - 1,
                                   static_cast<size_t>(q * latencies_us.size()))];
    };
    rate.p50_us = at(0.50);
    rate.p99_us = at(0.99);
  }
  return rate;
}

// ---------------------------------------------------------------------------
// Raw TCP reference: request of N bytes (after an 8-byte length), 1-byte ack.

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrCat("raw tcp: ", what, ": ", strerror(errno)));
}

// A TCP server on 127.0.0.1 (port 0) that acks every request; on its own
// thread, serves one connection at a time until the client closes it.
class RawTcpSink {
 public:
  ~RawTcpSink() {
    if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);  // unblocks accept()
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }

  absl::Status Start() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd_ < 0) return Errno("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      return Errno("bind");
    if (listen(listen_fd_, 1) != 0) return Errno("listen");
    if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return Errno("getsockname");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
    return absl::OkStatus();
  }
  int port() const { return port_; }

 private:
  void Serve() {
    while (true) {
      const int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;  // shut down
      ServeConnection(fd);
    }
  }

  void ServeConnection(int fd) {
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::vector<char> buffer;
    while (true) {
      uint64_t n;
      if (!frame::ReadFull(fd, reinterpret_cast<char*>(&n), sizeof(n))) break;
      if (buffer.size() < n) buffer.resize(n);
      if (!frame::ReadFull(fd, buffer.data(), n)) break;
      const char ack = 1;
      if (!frame::WriteFull(fd, &ack, 1)) break;
    }
    close(fd);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

class RawTcpClient {
 public:
  ~RawTcpClient() {
    if (fd_ >= 0) close(fd_);
  }
  absl::Status Connect(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return Errno("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      return Errno("connect");
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    const timeval timeout{10, 0};  // a lost ack is an error, not a hang
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    return absl::OkStatus();
  }
  // Sends `message` (8-byte length header + payload, built by the caller)
  // and waits for the ack.
  absl::Status RoundTrip(const std::vector<char>& message) {
    if (!frame::WriteFull(fd_, message.data(), message.size())) return Errno("write");
    char ack;
    if (!frame::ReadFull(fd_, &ack, 1)) return Errno("read ack");
    return absl::OkStatus();
  }

 private:
  int fd_ = -1;
};

// ---------------------------------------------------------------------------
// The bench as the job's worker.

struct DenseResult {
  std::string table;
  uint64_t bytes = 0;  // payload per request
  Rate tcp, push1, pull1, pushn, pulln;
};

struct SparseResult {
  int keys = 0;
  int dim = 0;
  Rate push, pull;
};

// The exactly-once check's outcome.
struct CountResult {
  uint64_t pushes = 0;      // attempted
  uint64_t acked = 0;       // acknowledged
  uint64_t failed = 0;      // gave up: applied or not, unknown
  uint64_t keys = 0;
  uint64_t lost = 0;        // keys below their acknowledged count
  uint64_t duplicated = 0;  // keys above acknowledged + failed pushes
  double seconds = 0;
  double longest_stall_ms = 0;  // longest time between two acknowledgements
  std::vector<uint64_t> acks_per_250ms;
};

struct Results {
  std::optional<CountResult> count;
  int servers = 0;
  int partitions = 0;
  int inflight = 0;
  std::string data_plane;  // "tcp" or "grpc": what the figures went over
  std::vector<DenseResult> dense;
  std::vector<DenseResult> dense_grpc;  // --compare_grpc: the same over gRPC
  std::vector<SparseResult> sparse;
  double tcp_1m_gbps = 0;  // raw TCP at 1 MiB, the sparse figures' yardstick
  std::string spot_check;
};

class Bench {
 public:
  Bench(const config::JobConfig& job, const rpc::ClusterView& view, uint32_t node_id, int32_t rank,
        uint64_t incarnation, SchedulerClient* scheduler, const StopFlag* stop)
      : job_(job),
        view_(view),
        node_id_(node_id),
        rank_(rank),
        incarnation_(incarnation),
        scheduler_(scheduler),
        stop_(stop),
        tables_(TablesForJob(job)) {}

  absl::StatusOr<Results> Run();
  absl::StatusOr<CountResult> RunCount(absl::Duration duration, int keys);

 private:
  std::unique_ptr<KvClient> NewClient(uint64_t incarnation, bool data_plane = true) const;
  // kDenseKeys keys of `table` in distinct partitions, alternating over the servers.
  std::vector<uint64_t> PickKeys(uint32_t table) const;
  using Clients = std::vector<std::unique_ptr<KvClient>>;
  // `clients`: [0] for one request at a time, [1..] one per thread in flight.
  absl::StatusOr<DenseResult> RunDense(uint32_t table, const Clients& clients, bool with_tcp);
  absl::StatusOr<SparseResult> RunSparse(uint32_t table, int keys);
  absl::StatusOr<Rate> RunTcp(uint64_t bytes);
  // Pulls `keys` of `table` with client 0.
  absl::StatusOr<std::vector<float>> PullValues(uint32_t table, const std::vector<uint64_t>& keys);
  // Compares the values of every pushed key with baseline - lr * pushes * g.
  absl::Status Check(uint32_t table, const std::vector<uint64_t>& keys,
                     const std::vector<float>& baseline, const std::vector<uint64_t>& pushes);

  // Whether the servers offer the TCP data plane (cluster.data_plane: tcp).
  bool UsesDataPlane() const {
    for (const rpc::ServerInfo& s : view_.servers()) {
      if (!s.data_address().empty()) return true;
    }
    return false;
  }
  uint64_t budget() const { return static_cast<uint64_t>(absl::GetFlag(FLAGS_budget_mib)) << 20; }
  absl::Duration max_time() const { return absl::Seconds(absl::GetFlag(FLAGS_max_seconds)); }

  const config::JobConfig job_;
  const rpc::ClusterView view_;
  const uint32_t node_id_;  // reports of unreachable servers speak for it
  const int32_t rank_;
  const uint64_t incarnation_;
  SchedulerClient* const scheduler_;
  const StopFlag* const stop_;
  const std::vector<TableSpec> tables_;
  int tcp_port_ = 0;
  // clients_[0] does the one-at-a-time runs; clients_[t] is thread t's in the
  // concurrent runs. Distinct incarnations keep their seqs apart on the servers.
  Clients clients_;
  Clients grpc_clients_;  // the same over gRPC (--compare_grpc)
};

std::unique_ptr<KvClient> Bench::NewClient(uint64_t incarnation, bool data_plane) const {
  KvClient::Options o;
  o.data_plane = data_plane;
  o.rank = rank_;
  o.incarnation = incarnation;
  o.num_partitions = job_.cluster().num_partitions();
  o.rpc_timeout = absl::Milliseconds(job_.cluster().rpc_timeout_ms());
  o.max_retries = job_.cluster().max_retries();
  o.max_chunk_bytes = job_.cluster().max_chunk_bytes();
  auto kv = std::make_unique<KvClient>(o, tables_, [s = scheduler_] { return s->GetView(); });
  kv->SetView(view_);
  return kv;
}

std::vector<uint64_t> Bench::PickKeys(uint32_t table) const {
  const int partitions = job_.cluster().num_partitions();
  const int servers = std::max(1, view_.servers_size());
  std::vector<std::vector<uint64_t>> by_server(servers);
  std::set<int> used;
  std::vector<uint64_t> keys;
  for (uint64_t k = 0; keys.size() < kDenseKeys && k < 100000; ++k) {
    const int p = PartitionOf(table, k, partitions);
    if (used.count(p) > 0 && used.size() < static_cast<size_t>(partitions)) continue;
    const int owner = p < view_.partition_owner_size() ? view_.partition_owner(p) : 0;
    // Take the key if its server is not ahead of the others.
    const size_t fair = (keys.size() + servers) / servers;
    if (owner < 0 || owner >= servers || by_server[owner].size() >= fair) continue;
    used.insert(p);
    by_server[owner].push_back(k);
    keys.push_back(k);
  }
  for (uint64_t k = 0; keys.size() < kDenseKeys; ++k) {  // e.g. one partition only
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  return keys;
}

absl::StatusOr<std::vector<float>> Bench::PullValues(uint32_t table,
                                                     const std::vector<uint64_t>& keys) {
  std::vector<TableKeys> batch(1);
  batch[0].table = table;
  batch[0].keys = keys;
  if (absl::Status s = clients_[0]->Pull(&batch, std::nullopt); !s.ok()) return s;
  return std::move(batch[0].values);
}

absl::Status Bench::Check(uint32_t table, const std::vector<uint64_t>& keys,
                          const std::vector<float>& baseline, const std::vector<uint64_t>& pushes) {
  auto got = PullValues(table, keys);
  if (!got.ok()) return got.status();
  const TableSpec& spec = tables_[table];
  const size_t dim = spec.dim;
  const double lr = spec.optimizer.learning_rate();
  if (got->size() != keys.size() * dim) {
    return absl::DataLossError(absl::StrCat("spot check: table ", spec.name, ": pulled ",
                                            got->size(), " values for ", keys.size(),
                                            " keys of dim ", dim));
  }
  for (size_t k = 0; k < keys.size(); ++k) {
    for (size_t i = 0; i < dim; ++i) {
      const size_t at = k * dim + i;
      const double want = baseline[at] - lr * static_cast<double>(pushes[k]) * Gradient(i);
      // Exact for the bench's own job (zeros, lr 1); a float-rounding margin otherwise.
      const double slack = (pushes[k] + 1) * std::ldexp(std::max(std::fabs(want), 1e-3), -22);
      if (std::fabs((*got)[at] - want) > slack) {
        return absl::DataLossError(absl::StrFormat(
            "spot check failed: table %s key %d element %d: pulled %.9g, want %.9g (initial %.9g "
            "- lr %g * %d pushes * gradient %.9g)",
            spec.name, keys[k], i, (*got)[at], want, baseline[at], lr, pushes[k], Gradient(i)));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Rate> Bench::RunTcp(uint64_t bytes) {
  RawTcpClient client;
  if (absl::Status s = client.Connect(tcp_port_); !s.ok()) return s;
  std::vector<char> message(sizeof(uint64_t) + bytes, 'x');
  std::memcpy(message.data(), &bytes, sizeof(bytes));
  for (int i = 0; i < 4; ++i) {  // warm-up
    if (absl::Status s = client.RoundTrip(message); !s.ok()) return s;
  }
  return RunTimed(1, bytes, budget(), max_time(), *stop_,
                  [&](int, uint64_t) { return client.RoundTrip(message); });
}

absl::StatusOr<DenseResult> Bench::RunDense(uint32_t table, const Clients& clients, bool with_tcp) {
  const TableSpec& spec = tables_[table];
  const size_t dim = spec.dim;
  const uint64_t bytes = dim * sizeof(float);
  DenseResult result;
  result.table = spec.name;
  result.bytes = bytes;
  if (with_tcp) {
    auto tcp = RunTcp(bytes);
    if (!tcp.ok()) return tcp.status();
    result.tcp = *tcp;
  }

  const std::vector<uint64_t> keys = PickKeys(table);
  const int inflight = static_cast<int>(clients.size()) - 1;
  auto baseline = PullValues(table, keys);  // also creates the rows on the servers
  if (!baseline.ok()) return baseline.status();
  std::vector<uint64_t> pushes(keys.size(), 0);

  // Per-thread request buffers, reused across ops.
  const int threads = std::max(1, inflight);
  std::vector<std::vector<TableKeys>> push_req(threads), pull_req(threads);
  for (int t = 0; t < threads; ++t) {
    push_req[t].resize(1);
    push_req[t][0].table = table;
    push_req[t][0].keys = {keys[0]};
    push_req[t][0].values.resize(dim);
    for (size_t i = 0; i < dim; ++i) push_req[t][0].values[i] = Gradient(i);
    pull_req[t].resize(1);
    pull_req[t][0].table = table;
    pull_req[t][0].keys = {keys[0]};
  }
  // Thread t of n owns keys t, t+n, ...; one at a time, client 0 cycles all.
  auto key_of = [&](int t, int n, uint64_t i) -> size_t {
    const size_t owned = (keys.size() - t + n - 1) / n;
    return t + (i % owned) * n;
  };
  auto push = [&](KvClient* kv, int t, size_t k) {
    push_req[t][0].keys[0] = keys[k];
    absl::Status s = kv->Push(push_req[t], std::nullopt, /*num_examples=*/1);
    if (s.ok()) ++pushes[k];  // k is owned by this thread during a run
    return s;
  };
  auto pull = [&](KvClient* kv, int t, size_t k) {
    pull_req[t][0].keys[0] = keys[k];
    absl::Status s = kv->Pull(&pull_req[t], std::nullopt);
    if (s.ok() && pull_req[t][0].values.size() != dim) {
      return absl::DataLossError(absl::StrCat("pull of table ", spec.name, " returned ",
                                              pull_req[t][0].values.size(), " values, want ", dim));
    }
    return s;
  };

  // Warm-up: every key pushed and pulled once by client 0.
  for (size_t k = 0; k < keys.size(); ++k) {
    if (absl::Status s = push(clients[0].get(), 0, k); !s.ok()) return s;
    if (absl::Status s = pull(clients[0].get(), 0, k); !s.ok()) return s;
  }
  auto one = [&](bool is_push) {
    return RunTimed(1, bytes, budget(), max_time(), *stop_, [&](int, uint64_t i) {
      const size_t k = key_of(0, 1, i);
      return is_push ? push(clients[0].get(), 0, k) : pull(clients[0].get(), 0, k);
    });
  };
  auto many = [&](bool is_push) {
    return RunTimed(inflight, bytes, budget(), max_time(), *stop_, [&](int t, uint64_t i) {
      const size_t k = key_of(t, inflight, i);
      KvClient* kv = clients[t + 1].get();
      return is_push ? push(kv, t, k) : pull(kv, t, k);
    });
  };
  for (auto [rate, run] : {std::pair{&result.push1, std::function([&] { return one(true); })},
                           std::pair{&result.pull1, std::function([&] { return one(false); })},
                           std::pair{&result.pushn, std::function([&] { return many(true); })},
                           std::pair{&result.pulln, std::function([&] { return many(false); })}}) {
    auto r = run();
    if (!r.ok()) return r.status();
    *rate = *r;
  }
  if (spec.optimizer.type() == config::SGD) {
    if (absl::Status s = Check(table, keys, *baseline, pushes); !s.ok()) return s;
  }
  return result;
}

absl::StatusOr<SparseResult> Bench::RunSparse(uint32_t table, int n) {
  const TableSpec& spec = tables_[table];
  SparseResult result;
  result.keys = n;
  result.dim = spec.dim;
  // Fixed batches of distinct random keys, reused, so the model stays small.
  std::mt19937_64 rng(job_.job().seed() ^ Mix64(table) ^ Mix64(static_cast<uint64_t>(n) << 8));
  std::set<uint64_t> seen;
  std::vector<std::vector<TableKeys>> push_batches(kSparseBatches), pull_batches(kSparseBatches);
  for (int b = 0; b < kSparseBatches; ++b) {
    TableKeys t;
    t.table = table;
    while (t.keys.size() < static_cast<size_t>(n)) {
      const uint64_t k = rng();
      if (seen.insert(k).second) t.keys.push_back(k);
    }
    pull_batches[b] = {t};
    t.values.resize(t.keys.size() * spec.dim);
    for (size_t i = 0; i < t.values.size(); ++i) t.values[i] = Gradient(i % spec.dim);
    push_batches[b] = {t};
  }
  std::vector<std::vector<float>> baseline(kSparseBatches);
  std::vector<uint64_t> pushes(kSparseBatches, 0);
  KvClient* kv = clients_[0].get();
  for (int b = 0; b < kSparseBatches; ++b) {  // warm-up; creates the rows
    auto v = PullValues(table, pull_batches[b][0].keys);
    if (!v.ok()) return v.status();
    baseline[b] = std::move(*v);
  }
  const uint64_t op_bytes = static_cast<uint64_t>(n) * spec.dim * sizeof(float);
  auto push = RunTimed(1, op_bytes, budget(), max_time(), *stop_, [&](int, uint64_t i) {
    const int b = i % kSparseBatches;
    absl::Status s = kv->Push(push_batches[b], std::nullopt, 1);
    if (s.ok()) ++pushes[b];
    return s;
  });
  if (!push.ok()) return push.status();
  result.push = *push;
  auto pull = RunTimed(1, op_bytes, budget(), max_time(), *stop_, [&](int, uint64_t i) {
    return kv->Pull(&pull_batches[i % kSparseBatches], std::nullopt);
  });
  if (!pull.ok()) return pull.status();
  result.pull = *pull;
  if (spec.optimizer.type() == config::SGD) {
    for (int b = 0; b < kSparseBatches; ++b) {
      // Check() wants per-key push counts.
      std::vector<uint64_t> per_key(pull_batches[b][0].keys.size(), pushes[b]);
      if (absl::Status s = Check(table, pull_batches[b][0].keys, baseline[b], per_key); !s.ok()) {
        return s;
      }
    }
  }
  return result;
}

absl::StatusOr<Results> Bench::Run() {
  if (tables_.size() <= kBenchSparse1 || job_.model().type() != config::BENCHMARK) {
    return absl::FailedPreconditionError("the job's model is not of type benchmark");
  }
  RawTcpSink sink;
  if (absl::Status s = sink.Start(); !s.ok()) return s;
  tcp_port_ = sink.port();
  const int inflight = std::clamp(absl::GetFlag(FLAGS_inflight), 1, kDenseKeys);
  const bool compare = absl::GetFlag(FLAGS_compare_grpc) && UsesDataPlane();
  for (int c = 0; c <= inflight; ++c) {
    clients_.push_back(NewClient(incarnation_ + 0x9e3779b97f4a7c15ULL * c));
    if (compare)
      grpc_clients_.push_back(NewClient(incarnation_ + 0x51ed27f1c4b3a9d5ULL * (c + 1), false));
  }
  Results results;
  results.servers = view_.servers_size();
  results.partitions = job_.cluster().num_partitions();
  results.inflight = inflight;
  results.data_plane = UsesDataPlane() ? "tcp" : "grpc";
  std::vector<uint32_t> dense_tables;
  for (const std::string& size : absl::GetFlag(FLAGS_dense_sizes)) {
    const std::string lower = absl::AsciiStrToLower(size);
    if (lower == "4k") {
      dense_tables.push_back(kBenchDense4K);
    } else if (lower == "1m") {
      dense_tables.push_back(kBenchDense1M);
    } else if (lower == "4m") {
      dense_tables.push_back(kBenchDense4M);
    } else if (lower == "16m") {
      dense_tables.push_back(kBenchDense16M);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--dense_sizes: '", size, "' is not one of 4k, 1m, 4m, 16m"));
    }
  }
  for (uint32_t table : dense_tables) {
    auto d = RunDense(table, clients_, /*with_tcp=*/true);
    if (!d.ok()) return d.status();
    results.dense.push_back(*d);
    if (compare) {
      auto g = RunDense(table, grpc_clients_, /*with_tcp=*/false);
      if (!g.ok()) return g.status();
      g->tcp = d->tcp;
      results.dense_grpc.push_back(*g);
    }
    if (table == kBenchDense1M) results.tcp_1m_gbps = d->tcp.gbps();
    std::cerr << "ps_bench: " << SizeName(d->bytes) << " done" << std::endl;
  }
  const std::vector<std::string> sparse_counts = absl::GetFlag(FLAGS_sparse_keys);
  if (!sparse_counts.empty() && results.tcp_1m_gbps == 0) {  // the sparse figures' yardstick
    auto tcp = RunTcp(1 << 20);
    if (!tcp.ok()) return tcp.status();
    results.tcp_1m_gbps = tcp->gbps();
  }
  for (const std::string& count : sparse_counts) {
    int n = 0;
    if (!absl::SimpleAtoi(count, &n) || n < 1 || n > 1000000) {
      return absl::InvalidArgumentError(
          absl::StrCat("--sparse_keys: '", count, "' is not a key count in 1..1000000"));
    }
    for (uint32_t table : {kBenchSparse1, kBenchSparse}) {
      auto sparse = RunSparse(table, n);
      if (!sparse.ok()) return sparse.status();
      results.sparse.push_back(*sparse);
    }
    std::cerr << "ps_bench: sparse " << n << " keys done" << std::endl;
  }
  results.spot_check = tables_[0].optimizer.type() == config::SGD
                           ? "passed (every key pushed: value = initial - lr * sum of gradients)"
                           : "skipped (the job's optimizer is not sgd)";
  return results;
}

absl::StatusOr<CountResult> Bench::RunCount(absl::Duration duration, int num_keys) {
  KvClient::Options o;
  o.rank = rank_;
  o.incarnation = incarnation_;
  o.num_partitions = job_.cluster().num_partitions();
  o.rpc_timeout = absl::Milliseconds(job_.cluster().rpc_timeout_ms());
  o.max_retries = job_.cluster().max_retries();
  o.max_chunk_bytes = job_.cluster().max_chunk_bytes();
  o.failover_window = 2 * absl::Milliseconds(job_.cluster().heartbeat_timeout_ms()) + absl::Seconds(2);
  // The scheduler checks that a report speaks for the caller's own node:
  // reported as node 0, every report was refused and a killed server was
  // found only by the heartbeat timeout.
  o.report_unreachable = [s = scheduler_, node = node_id_](int server, const std::string& error,
                                                           absl::Duration failing_for) {
    (void)s->Suspect(node, server, error, failing_for);
  };
  KvClient kv(o, tables_, [s = scheduler_] { return s->GetView(); });
  kv.SetView(view_);
  const int dim = tables_[kBenchSparse].dim;
  std::vector<TableKeys> all(1);
  all[0].table = kBenchSparse;
  const bool skew = absl::GetFlag(FLAGS_count_skew);
  for (uint64_t k = 0; static_cast<int>(all[0].keys.size()) < num_keys; ++k) {
    const int p = PartitionOf(kBenchSparse, k, job_.cluster().num_partitions());
    if (!skew || view_.partition_owner(p) == 0) all[0].keys.push_back(k);
  }
  if (absl::Status s = kv.Pull(&all, std::nullopt); !s.ok()) return s;
  const std::vector<float> initial = all[0].values;
  std::map<uint64_t, uint64_t> acked, failed;  // by key
  std::mt19937_64 rng(incarnation_);
  CountResult r;
  r.keys = num_keys;
  const absl::Time start = absl::Now();
  absl::Time last_ack = start;
  while (absl::Now() - start < duration && !stop_->set()) {
    // 4 distinct keys per push, on whichever servers hold them.
    std::vector<TableKeys> push(1);
    push[0].table = kBenchSparse;
    std::set<uint64_t> picked;
    while (picked.size() < std::min<size_t>(4, num_keys)) picked.insert(all[0].keys[rng() % num_keys]);
    push[0].keys.assign(picked.begin(), picked.end());
    push[0].values.assign(push[0].keys.size() * dim, -1.0f);  // sgd, lr 1: value += 1
    ++r.pushes;
    const absl::Status s = kv.Push(push, std::nullopt, /*num_examples=*/1);
    const absl::Time now = absl::Now();
    if (s.ok()) {
      ++r.acked;
      for (uint64_t k : push[0].keys) ++acked[k];
      r.longest_stall_ms = std::max(r.longest_stall_ms, absl::ToDoubleMilliseconds(now - last_ack));
      last_ack = now;
      const size_t bucket = static_cast<size_t>((now - start) / absl::Milliseconds(250));
      if (r.acks_per_250ms.size() <= bucket) r.acks_per_250ms.resize(bucket + 1, 0);
      ++r.acks_per_250ms[bucket];
    } else {
      ++r.failed;
      for (uint64_t k : push[0].keys) ++failed[k];
      std::cerr << "ps_bench: push " << r.pushes << " failed: " << s.message() << std::endl;
    }
  }
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (absl::Status s = kv.Pull(&all, std::nullopt); !s.ok()) return s;
  for (int i = 0; i < num_keys; ++i) {
    const uint64_t k = all[0].keys[i];
    const double got = static_cast<double>(all[0].values[static_cast<size_t>(i) * dim]) -
                       initial[static_cast<size_t>(i) * dim];
    if (got < static_cast<double>(acked[k]) - 0.5) {
      ++r.lost;
      std::cerr << "ps_bench: key " << k << " counts " << got << " but " << acked[k]
                << " pushes were acknowledged" << std::endl;
    } else if (got > static_cast<double>(acked[k] + failed[k]) + 0.5) {
      ++r.duplicated;
      std::cerr << "ps_bench: key " << k << " counts " << got << " but only " << acked[k] + failed[k]
                << " pushes were sent" << std::endl;
    }
  }
  return r;
}

// ---------------------------------------------------------------------------
// Output.

std::string Table(const Results& r) {
  std::string out = absl::StrFormat(
      "ps_bench: %d servers, %d partitions, loopback, over %s; GB/s = 10^9 payload bytes/s; one "
      "key per request;\n          'x1' = one request at a time, 'x%d' = %d requests in flight "
      "(own KvClient each)\n\n",
      r.servers, r.partitions, r.data_plane == "tcp" ? "the TCP data plane" : "gRPC", r.inflight,
      r.inflight);
  absl::StrAppend(
      &out, absl::StrFormat("%-8s | %-4s | %12s | %9s | %9s | %8s | %8s\n", "size", "mode",
                            "raw TCP GB/s", "push GB/s", "pull GB/s", "push/TCP", "pull/TCP"));
  absl::StrAppend(&out, std::string(8, '-'), "-+-", std::string(4, '-'), "-+-",
                  std::string(12, '-'), "-+-", std::string(9, '-'), "-+-", std::string(9, '-'),
                  "-+-", std::string(8, '-'), "-+-", std::string(8, '-'), "\n");
  for (const DenseResult& d : r.dense) {
    const double tcp = d.tcp.gbps();
    auto row = [&](const std::string& mode, const Rate& push, const Rate& pull) {
      absl::StrAppend(&out,
                      absl::StrFormat("%-8s | %-4s | %12.2f | %9.2f | %9.2f | %8.2f | %8.2f\n",
                                      SizeName(d.bytes), mode, tcp, push.gbps(), pull.gbps(),
                                      push.gbps() / tcp, pull.gbps() / tcp));
    };
    row("x1", d.push1, d.pull1);
    row(absl::StrCat("x", r.inflight), d.pushn, d.pulln);
  }
  if (!r.dense_grpc.empty()) {
    absl::StrAppend(
        &out,
        "\nthe same over gRPC (cluster.data_plane: grpc), same run; tcp/grpc = "
        "data plane / gRPC\n",
        absl::StrFormat("%-8s | %-4s | %9s | %9s | %8s | %8s | %8s | %8s\n", "size", "mode",
                        "push GB/s", "pull GB/s", "push/TCP", "pull/TCP", "push x", "pull x"));
    for (size_t i = 0; i < r.dense_grpc.size() && i < r.dense.size(); ++i) {
      const DenseResult& g = r.dense_grpc[i];
      const DenseResult& d = r.dense[i];
      const double tcp = g.tcp.gbps();
      auto row = [&](const std::string& mode, const Rate& push, const Rate& pull, const Rate& dpush,
                     const Rate& dpull) {
        absl::StrAppend(
            &out,
            absl::StrFormat("%-8s | %-4s | %9.2f | %9.2f | %8.2f | %8.2f | %8.2f | %8.2f\n",
                            SizeName(g.bytes), mode, push.gbps(), pull.gbps(), push.gbps() / tcp,
                            pull.gbps() / tcp, push.gbps() > 0 ? dpush.gbps() / push.gbps() : 0,
                            pull.gbps() > 0 ? dpull.gbps() / pull.gbps() : 0));
      };
      row("x1", g.push1, g.pull1, d.push1, d.pull1);
      row(absl::StrCat("x", r.inflight), g.pushn, g.pulln, d.pushn, d.pulln);
    }
  }
  absl::StrAppend(&out, "\nlatency of one request at a time (x1), microseconds: mean / p50 / p99\n",
                  absl::StrFormat("%-8s | %-23s | %-23s | %-23s | %s\n", "size",
                                  "raw TCP round trip", "push", "pull", "push mean / TCP mean"));
  for (const DenseResult& d : r.dense) {
    auto cell = [](const Rate& x) {
      return absl::StrFormat("%7.0f / %6.0f / %6.0f", x.mean_us, x.p50_us, x.p99_us);
    };
    absl::StrAppend(&out, absl::StrFormat("%-8s | %s | %s | %s | %.2f\n", SizeName(d.bytes),
                                          cell(d.tcp), cell(d.push1), cell(d.pull1),
                                          d.tcp.mean_us > 0 ? d.push1.mean_us / d.tcp.mean_us : 0));
  }
  absl::StrAppend(&out,
                  absl::StrFormat("\nsparse (one request at a time, random keys; per GB/s = keys/s "
                                  "per GB/s of raw TCP at 1 MiB, %.2f GB/s)\n",
                                  r.tcp_1m_gbps),
                  absl::StrFormat("%-7s | %-3s | %12s | %12s | %14s | %14s\n", "keys", "dim",
                                  "push keys/s", "pull keys/s", "push per GB/s", "pull per GB/s"));
  for (const SparseResult& s : r.sparse) {
    const double push = s.push.ops_per_s() * s.keys, pull = s.pull.ops_per_s() * s.keys;
    const double per = r.tcp_1m_gbps > 0 ? r.tcp_1m_gbps : 1;
    absl::StrAppend(&out, absl::StrFormat("%-7d | %-3d | %12.0f | %12.0f | %14.0f | %14.0f\n",
                                          s.keys, s.dim, push, pull, push / per, pull / per));
  }
  absl::StrAppend(&out, "spot check: ", r.spot_check, "\n");
  return out;
}

std::string Json(const Results& r) {
  auto rate = [](const Rate& x) {
    return absl::StrFormat(
        "{\"gbps\": %.4f, \"ops\": %d, \"bytes\": %d, \"seconds\": %.4f, \"mean_us\": %.1f, "
        "\"p50_us\": %.1f, \"p99_us\": %.1f}",
        x.gbps(), x.ops, x.bytes, x.seconds, x.mean_us, x.p50_us, x.p99_us);
  };
  std::string out = absl::StrFormat(
      "{\n  \"servers\": %d,\n  \"partitions\": %d,\n  \"inflight\": %d,\n  \"cpus\": %d,\n  "
      "\"data_plane\": \"%s\",\n  \"dense\": [",
      r.servers, r.partitions, r.inflight, std::thread::hardware_concurrency(), r.data_plane);
  auto dense = [&](const std::vector<DenseResult>& list, const std::string& suffix) {
    for (size_t i = 0; i < list.size(); ++i) {
      const DenseResult& d = list[i];
      absl::StrAppend(
          &out, i == 0 ? "\n" : ",\n",
          absl::StrFormat("    {\"table\": \"%s%s\", \"bytes\": %d,\n", d.table, suffix, d.bytes),
          "     \"raw_tcp\": ", rate(d.tcp), ",\n", "     \"push_x1\": ", rate(d.push1), ",\n",
          "     \"pull_x1\": ", rate(d.pull1), ",\n", "     \"push_inflight\": ", rate(d.pushn),
          ",\n", "     \"pull_inflight\": ", rate(d.pulln), "}");
    }
  };
  dense(r.dense, "");
  absl::StrAppend(&out, "\n  ],\n  \"dense_grpc\": [");
  dense(r.dense_grpc, " (grpc)");
  absl::StrAppend(&out, "\n  ],\n  \"raw_tcp_1m_gbps\": ", absl::StrFormat("%.4f", r.tcp_1m_gbps),
                  ",\n  \"sparse\": [");
  for (size_t i = 0; i < r.sparse.size(); ++i) {
    const SparseResult& s = r.sparse[i];
    absl::StrAppend(
        &out, i == 0 ? "\n" : ",\n",
        absl::StrFormat("    {\"table\": \"sparse dim %d x %d keys\", \"keys_per_request\": %d, "
                        "\"dim\": %d,\n",
                        s.dim, s.keys, s.keys, s.dim),
        absl::StrFormat("     \"push_keys_per_s\": %.0f, \"pull_keys_per_s\": %.0f,\n",
                        s.push.ops_per_s() * s.keys, s.pull.ops_per_s() * s.keys),
        "     \"push\": ", rate(s.push), ",\n     \"pull\": ", rate(s.pull), "}");
  }
  absl::StrAppend(&out, "\n  ],\n  \"spot_check\": \"", r.spot_check, "\"\n}\n");
  return out;
}

// ---------------------------------------------------------------------------
// Wiring.

int Fatal(const std::string& message) {
  std::cerr << "ps_bench: error: " << message << std::endl;
  return 1;
}

// Registers as the job's worker, benches, reaches "end" and leaves. Returns
// the results, or an error after telling the scheduler the job failed.
absl::StatusOr<Results> JoinAndBench(const std::string& scheduler_address) {
  SchedulerClient client(scheduler_address);
  rpc::RegisterRequest reg;
  reg.set_role(rpc::WORKER);
  const uint64_t incarnation = SchedulerClient::NewIncarnation();
  reg.set_incarnation(incarnation);
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  reg.set_hostname(host);
  auto registered =
      client.Register(reg, absl::Milliseconds(absl::GetFlag(FLAGS_connect_timeout_ms)));
  if (!registered.ok()) return registered.status();
  const config::JobConfig& job = registered->config();
  const uint32_t node_id = registered->node_id();
  if (absl::Status s = AdoptTicket(registered->ticket(), job.security().insecure()); !s.ok())
    return s;
  if (job.model().type() != config::BENCHMARK || job.job().mode() == config::BSP) {
    (void)client.Leave(node_id);
    return absl::FailedPreconditionError(
        absl::StrCat("the job at ", scheduler_address,
                     " is not a benchmark job in asp or ssp mode "
                     "(model.type: benchmark, job.mode: asp; see bench/bench.yaml)"));
  }

  StopFlag stop;
  auto heartbeat = std::make_unique<Heartbeat>(
      &client, node_id, absl::Milliseconds(job.cluster().heartbeat_interval_ms()),
      absl::Milliseconds(job.cluster().heartbeat_timeout_ms()), nullptr,
      [&](Heartbeat::End, const std::string& why) { stop.Set(why); });
  auto finish = [&](absl::StatusOr<Results> r) {
    if (!r.ok()) (void)client.Fail(node_id, absl::StrCat("ps_bench: ", r.status().message()));
    heartbeat.reset();
    return r;
  };

  const absl::Duration connect = absl::Milliseconds(job.cluster().connect_timeout_ms());
  auto view = client.WaitForStart(node_id, connect);
  if (!view.ok()) {
    return finish(absl::Status(view.status().code(),
                               absl::StrCat("start barrier: ", view.status().message())));
  }
  Bench bench(job, *view, node_id, registered->rank(), incarnation, &client, &stop);
  absl::StatusOr<Results> results;
  if (const double secs = absl::GetFlag(FLAGS_count_seconds); secs > 0) {
    std::cerr << "ps_bench: counting for " << secs << " s" << std::endl;
    auto count = bench.RunCount(absl::Seconds(secs), std::max(4, absl::GetFlag(FLAGS_count_keys)));
    if (count.ok()) {
      results.emplace();
      results->count = *count;
    } else {
      results = count.status();
    }
  } else {
    results = bench.Run();
  }
  if (!results.ok()) return finish(results);
  // The scheduler saves the model, then releases "end".
  if (auto end = client.Barrier(node_id, "end", connect); !end.ok()) {
    return finish(
        absl::Status(end.status().code(), absl::StrCat("end barrier: ", end.status().message())));
  }
  (void)client.Leave(node_id);
  return finish(results);
}

int Report(const Results& results) {
  if (results.count.has_value()) {
    const CountResult& c = *results.count;
    const std::string json = absl::StrFormat(
        "{\"pushes\": %d, \"acked\": %d, \"failed\": %d, \"keys\": %d, \"lost\": %d, "
        "\"duplicated\": %d, \"seconds\": %.3f, \"longest_stall_ms\": %.1f, "
        "\"acks_per_250ms\": [%s]}\n",
        c.pushes, c.acked, c.failed, c.keys, c.lost, c.duplicated, c.seconds, c.longest_stall_ms,
        absl::StrJoin(c.acks_per_250ms, ", "));
    std::cout << "exactly-once check: " << json << std::flush;
    if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
      if (absl::Status s = WriteFileAtomically(path, json); !s.ok()) return Fatal(std::string(s.message()));
    }
    if (c.lost > 0 || c.duplicated > 0) {
      return Fatal(absl::StrCat(c.lost, " keys lost acknowledged updates, ", c.duplicated,
                                " keys counted a push twice"));
    }
    return 0;
  }
  std::cout << Table(results) << std::flush;
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    if (absl::Status s = WriteFileAtomically(path, Json(results)); !s.ok()) {
      return Fatal(std::string(s.message()));
    }
    std::cout << "figures written to " << path << std::endl;
  }
  return 0;
}

int RunServer() {
  bench::ServerBenchOptions o;
  o.apply_rates = absl::GetFlag(FLAGS_apply_rates);
  o.max_seconds = absl::GetFlag(FLAGS_max_seconds);
  o.memory_keys = absl::GetFlag(FLAGS_memory_keys);
  auto ints = [](const char* flag, const std::vector<std::string>& in, int max,
                 std::vector<int>* out) -> absl::Status {
    out->clear();
    for (const std::string& v : in) {
      int n;
      if (!absl::SimpleAtoi(v, &n) || n < 1 || n > max) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, ": '", v, "' is not a number from 1 to ", max));
      }
      out->push_back(n);
    }
    return absl::OkStatus();
  };
  if (absl::Status s =
          ints("growth_workers", absl::GetFlag(FLAGS_growth_workers), 4096, &o.growth_workers);
      !s.ok()) {
    return Fatal(std::string(s.message()));
  }
  if (absl::Status s = ints("growth_partitions", absl::GetFlag(FLAGS_growth_partitions), 65536,
                            &o.growth_partitions);
      !s.ok()) {
    return Fatal(std::string(s.message()));
  }
  if (o.max_seconds <= 0) return Fatal("--max_seconds must be positive");
  auto report = bench::RunServerBench(o);
  if (!report.ok()) return Fatal(std::string(report.status().message()));
  std::cout << *report << std::flush;
  return 0;
}

// --barrier_workers: N members meet at R barriers. Per round, the latency
// is from the last arrival's call to the last release seen; against the
// median round trip of a unary call (GetView) to the same scheduler, in the
// same run.
int RunBarriers(const std::string& scheduler_address, int workers, int rounds,
                const config::JobConfig& job) {
  struct Member {
    std::unique_ptr<SchedulerClient> client;
    uint32_t node_id = 0;
    std::unique_ptr<Heartbeat> heartbeat;
    std::vector<absl::Time> start, done;
  };
  std::vector<Member> members(workers);
  const absl::Duration connect = absl::Milliseconds(job.cluster().connect_timeout_ms());
  std::atomic<bool> failed{false};
  std::string why;
  Mutex why_mu;
  auto fail = [&](const std::string& w) {
    MutexLock lock(&why_mu);
    if (why.empty()) why = w;
    failed = true;
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < workers; ++i) {
    threads.emplace_back([&, i] {
      Member& m = members[i];
      m.client = std::make_unique<SchedulerClient>(scheduler_address);
      rpc::RegisterRequest reg;
      reg.set_role(rpc::WORKER);
      reg.set_incarnation(SchedulerClient::NewIncarnation());
      auto registered = m.client->Register(reg, connect);
      if (!registered.ok()) return fail(std::string(registered.status().message()));
      m.node_id = registered->node_id();
      m.heartbeat = std::make_unique<Heartbeat>(
          m.client.get(), m.node_id, absl::Milliseconds(job.cluster().heartbeat_interval_ms()),
          absl::Milliseconds(job.cluster().heartbeat_timeout_ms()), nullptr,
          [&](Heartbeat::End, const std::string& w) { fail(w); });
      if (auto v = m.client->WaitForStart(m.node_id, connect); !v.ok()) {
        return fail(std::string(v.status().message()));
      }
      for (int r = 0; r < rounds && !failed; ++r) {
        m.start.push_back(absl::Now());
        if (auto b = m.client->Barrier(m.node_id, absl::StrCat("bench-", r), connect); !b.ok()) {
          return fail(std::string(b.status().message()));
        }
        m.done.push_back(absl::Now());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  // A unary round trip, for the ratio.
  std::vector<double> unary_us;
  if (!failed) {
    for (int i = 0; i < 200; ++i) {
      const absl::Time t0 = absl::Now();
      if (!members[0].client->GetView().ok()) break;
      unary_us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
    }
  }
  // The job's end: every member at "end", then gone.
  std::string failure;
  {
    MutexLock lock(&why_mu);
    failure = why;
  }
  threads.clear();
  for (int i = 0; i < workers; ++i) {
    threads.emplace_back([&, i] {
      Member& m = members[i];
      if (m.client == nullptr || m.node_id == 0) return;
      if (!failed) (void)m.client->Barrier(m.node_id, "end", connect);
      if (failed) (void)m.client->Fail(m.node_id, "ps_bench --barrier_workers: " + failure);
      m.heartbeat.reset();
      (void)m.client->Leave(m.node_id);
    });
  }
  for (std::thread& t : threads) t.join();
  if (failed) {
    MutexLock lock(&why_mu);  // the heartbeats are stopped: nothing writes it now
    return Fatal(why);
  }
  std::vector<double> latency_us, arrival_spread_us;
  for (int r = 0; r < rounds; ++r) {
    absl::Time first_start = absl::InfiniteFuture(), last_start = absl::InfinitePast(),
               last_done = absl::InfinitePast();
    for (const Member& m : members) {
      first_start = std::min(first_start, m.start[r]);
      last_start = std::max(last_start, m.start[r]);
      last_done = std::max(last_done, m.done[r]);
    }
    latency_us.push_back(absl::ToDoubleMicroseconds(last_done - last_start));
    arrival_spread_us.push_back(absl::ToDoubleMicroseconds(last_start - first_start));
  }
  auto quantile = [](std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))];
  };
  const double unary = quantile(unary_us, 0.5);
  const double p50 = quantile(latency_us, 0.5), p90 = quantile(latency_us, 0.9),
               max = quantile(latency_us, 1.0);
  std::cout << absl::StrFormat(
      "{\"barrier_workers\": %d, \"rounds\": %d,\n"
      " \"release_after_last_arrival_us\": {\"p50\": %.0f, \"p90\": %.0f, \"max\": %.0f},\n"
      " \"arrival_spread_us_p50\": %.0f, \"unary_round_trip_us_p50\": %.0f,\n"
      " \"p50_over_unary\": %.2f}\n",
      workers, rounds, p50, p90, max, quantile(arrival_spread_us, 0.5), unary,
      unary > 0 ? p50 / unary : 0.0);
  return 0;
}

int Run(std::vector<std::string> overrides) {
  if (absl::GetFlag(FLAGS_server)) return RunServer();
  const int barrier_workers = absl::GetFlag(FLAGS_barrier_workers);
  if (barrier_workers < 0 || barrier_workers > 4096) {
    return Fatal("--barrier_workers must be in 0..4096");
  }
  if (barrier_workers > 0) {
    if (absl::GetFlag(FLAGS_barrier_rounds) < 1) return Fatal("--barrier_rounds must be >= 1");
    overrides.push_back(absl::StrCat("cluster.num_workers=", barrier_workers));
    overrides.push_back("security.insecure=true");
  }
  const std::string config_path = absl::GetFlag(FLAGS_config);
  const std::string scheduler = absl::GetFlag(FLAGS_scheduler);
  if (config_path.empty() == scheduler.empty()) {
    return Fatal(
        "give exactly one of --config JOB.yaml (start a cluster) or --scheduler HOST:PORT");
  }
  if (!scheduler.empty()) {
    std::string host;
    int port;
    if (absl::Status s = ParseHostPort(scheduler, "--scheduler", &host, &port); !s.ok()) {
      return Fatal(std::string(s.message()));
    }
    if (absl::Status s = InitMemberSecurity(rpc::PRINCIPAL_WORKER); !s.ok()) {
      return Fatal(std::string(s.message()));
    }
    auto results = JoinAndBench(scheduler);
    if (!results.ok()) return Fatal(std::string(results.status().message()));
    return Report(*results);
  }

  auto job = LoadJobConfig(config_path, overrides);
  if (!job.ok()) return Fatal(std::string(job.status().message()));
  if (job->model().type() != config::BENCHMARK) {
    return Fatal(absl::StrCat(config_path, ": model.type must be benchmark"));
  }
  if (job->job().mode() == config::BSP) {
    return Fatal(absl::StrCat(config_path,
                              ": job.mode must be asp or ssp (the bench pushes without clocks)"));
  }
  if (job->cluster().num_workers() != 1 && barrier_workers == 0) {
    return Fatal(
        absl::StrCat(config_path, ": cluster.num_workers must be 1 (ps_bench is the worker)"));
  }
  LocalClusterOptions options;
  options.config_path = config_path;
  options.overrides = overrides;
  options.bin_dir =
      absl::GetFlag(FLAGS_bin_dir).empty() ? ExecutableDir() : absl::GetFlag(FLAGS_bin_dir);
  options.log_dir = job->job().output_dir() + "/logs";
  options.start_workers = false;
  options.scheduler_to_log = true;
  LocalCluster cluster;
  if (absl::Status s = cluster.Start(*job, options); !s.ok()) {
    cluster.processes().TerminateAll(absl::Seconds(2));
    return Fatal(absl::StrCat(s.message(), " (logs in ", options.log_dir, ")"));
  }
  std::cerr << "ps_bench: cluster up: scheduler at " << cluster.scheduler_address() << ", "
            << job->cluster().num_servers() << " servers; logs in " << options.log_dir << std::endl;
  absl::StatusOr<Results> results = absl::UnknownError("not run");
  absl::Status security = SetTransportSecurityFromFlags();
  if (security.ok() && !TransportIsTls() && !job->security().tls().cert().empty()) {
    security = SetTransportSecurity(TlsFilesForRole(job->security().tls(), "worker"));
  }
  if (security.ok() && !cluster.auth_dir().empty()) {
    security = LoadProcessCredentials(cluster.auth_dir() + "/worker.token", rpc::PRINCIPAL_WORKER)
                   .status();
  }
  if (barrier_workers > 0) {
    const int code = security.ok() ? RunBarriers(cluster.scheduler_address(), barrier_workers,
                                                 absl::GetFlag(FLAGS_barrier_rounds), *job)
                                   : Fatal(std::string(security.message()));
    std::string error;
    const int down = cluster.Wait(absl::Now() + absl::Seconds(code == 0 ? 60 : 10), &error,
                                  [] { return StopRequested(); });
    if (code != 0) return code;
    if (down != 0) return Fatal(absl::StrCat("cluster shutdown: ", error));
    return 0;
  }
  results =
      security.ok() ? JoinAndBench(cluster.scheduler_address()) : absl::StatusOr<Results>(security);
  std::string error;
  const int code = cluster.Wait(absl::Now() + absl::Seconds(results.ok() ? 60 : 10), &error,
                                [] { return StopRequested(); });
  if (!results.ok()) {
    return Fatal(absl::StrCat(results.status().message(), " (logs in ", options.log_dir, ")"));
  }
  if (code != 0) return Fatal(absl::StrCat("cluster shutdown: ", error));
  return Report(*results);
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "ps_bench --config bench/bench.yaml [--set section.field=value ...] [--json FILE]\n"
      "   or: ps_bench --scheduler HOST:PORT [--json FILE]\n"
      "   or: ps_bench --server [--memory_keys N] [--max_seconds S]");
  std::vector<std::string> overrides = ps::ExtractRepeatedFlag("set", &argc, argv);
  absl::ParseCommandLine(argc, argv);
  ps::InstallStopSignalHandlers();
  ps::ConfigureMutexDeadlockDetection();
  if (absl::Status s = ps::InitLogging("bench", absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    std::cerr << "ps_bench: error: " << s.message() << std::endl;
    return 1;
  }
  return ps::Run(overrides);
}
