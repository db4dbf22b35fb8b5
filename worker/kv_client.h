// The worker's key-value client: slices keys by the shard map (partition ->
// primary server), sends one request per server (cut into requests of whole
// partitions when large), all in flight at once, each with a deadline. A
// clocked push covers every partition (most with an empty part), so each
// partition counts the worker's clocks. Failed parts (server down, frozen,
// slow, or no longer primary) are retried after refreshing the map, re-routed
// to the partitions' current primaries with the same seq (so a retried push
// is applied once); calls to a server the map dropped are cancelled at once.
//
// Thread-safety: one training thread calls Push/Tick (seq_ and the
// compressor are its own); Pull and PullAhead may run on other threads at
// the same time (the BSP trainer pulls ahead while it pushes), and SetView
// from any thread (mu_ guards the view, stubs and data connections, handed
// out as shared pointers).
#ifndef PS_WORKER_KV_CLIENT_H_
#define PS_WORKER_KV_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/compression.h"
#include "common/sync.h"
#include "common/tables.h"
#include "proto/ps.grpc.pb.h"
#include "proto/scheduler.pb.h"
#include "worker/data_client.h"

namespace ps {

class KvClient {
 public:
  struct Options {
    int32_t rank = 0;
    uint64_t incarnation = 0;
    int num_partitions = 1;
    absl::Duration rpc_timeout = absl::Seconds(30);
    int max_retries = 5;
    // Failed requests are retried for at least this long (a failover takes
    // a heartbeat timeout plus a map change), and at least max_retries times.
    absl::Duration failover_window = absl::Seconds(12);
    size_t max_chunk_bytes = 4 << 20;
    // Push and pull over the servers' TCP data plane where the view gives
    // one (cluster.data_plane: tcp), else over gRPC.
    bool data_plane = true;
    // Called (on the calling thread) when a server cannot be reached, in
    // every retry round, with how long the call's attempts to it have been
    // failing (so the scheduler can check it before its heartbeat timeout,
    // and fail it over if this worker alone is cut off from it). Not called
    // when the server answers a short probe of this worker's own: its
    // timeouts were its own (a pull waiting for a straggler), not the link.
    std::function<void(int server, const std::string& error, absl::Duration failing_for)>
        report_unreachable;
    // Told of every Push and Pull (for /metrics): key and value bytes, time
    // including retries, whether it succeeded. On the calling thread.
    std::function<void(bool push, uint64_t bytes, absl::Duration took, bool ok)> observe;
    // Gradient compression (common/compression.h); no encodings: every
    // table pushes float32.
    CompressionOptions compression;
  };
  using ViewSource = std::function<absl::StatusOr<rpc::ClusterView>()>;

  // `refresh_view` fetches the current view from the scheduler.
  KvClient(Options options, std::vector<TableSpec> tables, ViewSource refresh_view);

  void SetView(const rpc::ClusterView& view) ABSL_LOCKS_EXCLUDED(mu_);

  // Fills tables[i].values with the values of tables[i].keys. With a clock,
  // the servers answer once their consistency gate allows.
  absl::Status Pull(std::vector<TableKeys>* tables, std::optional<int64_t> clock);
  // A pull sent while this worker's clocked push of clock - 1 may still be
  // in flight (from another thread), planned with map `map_version`, which
  // the caller read before starting that push (so the push goes to the
  // same primaries or newer ones). `acked_clock`: every push of this worker
  // below it was acknowledged (PullRequest.acked_clock). Tried once: a
  // caller that gets an error pulls again, normally, once its push is back;
  // one whose push failed sets `*cancel` (the pull would wait for the clock
  // that push was to complete). If the map moved past `map_version` it is
  // not sent (FAILED_PRECONDITION): a partition restored from a checkpoint
  // in the newer map could otherwise wait for a push that an older map's
  // primary acknowledged before it died.
  absl::Status PullAhead(std::vector<TableKeys>* tables, int64_t clock, int64_t acked_clock,
                         uint64_t map_version, const std::atomic<bool>* cancel);
  // The version of the map this client routes with.
  uint64_t map_version() ABSL_LOCKS_EXCLUDED(mu_);

  // Pushes gradient sums over `num_examples` examples. With a clock, every
  // server receives a (maybe empty) push, which advances this worker's clock
  // there.
  absl::Status Push(const std::vector<TableKeys>& tables, std::optional<int64_t> clock,
                    uint64_t num_examples, float lr_scale = 1.0f);

  // Sets this worker's clock on every server.
  // (Push and Pull time themselves for Options.observe around these.)
  absl::Status Tick(int64_t clock);

  // Fetches the view if `version` is newer than the one held (the heartbeat
  // thread calls this when the scheduler announces a new view).
  void MaybeRefresh(uint64_t version) ABSL_LOCKS_EXCLUDED(mu_);

  // Where this worker's rank stands on the servers: the lowest next clock
  // over all partitions (0 if it never pushed).
  absl::StatusOr<int64_t> ResumeClock();

  // Pushes sent so far (the last seq used).
  uint64_t last_seq() const { return seq_; }

  // Bytes of the push requests sent so far (every attempt), and of their
  // keys and values as float32: the ratio is what compression saves.
  uint64_t push_wire_bytes() const { return push_wire_bytes_.load(std::memory_order_relaxed); }
  uint64_t push_raw_bytes() const { return push_raw_bytes_.load(std::memory_order_relaxed); }

 private:
  struct Ahead {  // PullAhead's
    uint64_t map_version;
    int64_t acked_clock;
    const std::atomic<bool>* cancel;
  };
  absl::Status DoPull(std::vector<TableKeys>* tables, std::optional<int64_t> clock,
                      const Ahead* ahead);
  absl::Status DoPush(const std::vector<TableKeys>& tables, std::optional<int64_t> clock,
                      uint64_t num_examples, float lr_scale, uint64_t* wire_bytes);
  void Observe(bool push, const std::vector<TableKeys>& tables, absl::Time start,
               const absl::Status& s) const;
  struct Routed;
  absl::StatusOr<Routed> Route(const std::vector<TableKeys>& tables, bool with_values);
  std::shared_ptr<rpc::ParameterServer::Stub> Stub(int server) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether server `server` answers a short call (WorkerClock, 500 ms) now.
  bool Answers(int server) ABSL_LOCKS_EXCLUDED(mu_);
  // The server's data-plane connection, or null (gRPC).
  std::shared_ptr<DataConnection> Data(int server) ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<const rpc::ClusterView> CurrentView() ABSL_LOCKS_EXCLUDED(mu_);
  // Per server rank, the partitions a view makes it primary of, ascending.
  using Owned = std::vector<std::vector<int>>;
  // The current view with its Owned (computed once per view).
  std::pair<std::shared_ptr<const rpc::ClusterView>, std::shared_ptr<const Owned>>
  CurrentViewAndOwned() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RefreshView();
  // Whether the current map dropped `server` (dead, or primary of nothing).
  bool ServerGone(int server) ABSL_LOCKS_EXCLUDED(mu_);
  bool KeepTrying(int attempt, absl::Time first_failure) const;
  // Builds calls for `partitions`, runs them, hands replies to `on_ok`, and
  // retries the failed calls' partitions with a refreshed map (unless
  // `retry` is false: then a failed call fails the whole, and an unreachable
  // server is not reported). Calls are cancelled once `*cancel` is true.
  template <typename CallT, typename Build, typename Start, typename OnOk>
  absl::Status RunWithRetries(const char* what, std::vector<int> partitions, Build build,
                              Start start, OnOk on_ok, bool retry = true,
                              const std::atomic<bool>* cancel = nullptr);

  const Options options_;
  const std::vector<TableSpec> tables_;
  const ViewSource refresh_view_;
  uint64_t seq_ = 0;  // touched by the training thread only
  GradientCompressor compressor_;  // touched by the training thread only
  std::atomic<uint64_t> push_wire_bytes_{0};
  std::atomic<uint64_t> push_raw_bytes_{0};

  mutable Mutex mu_;
  // Immutable once published; replaced whole by SetView.
  std::shared_ptr<const rpc::ClusterView> view_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const Owned> owned_ ABSL_GUARDED_BY(mu_);  // of view_
  std::vector<std::shared_ptr<rpc::ParameterServer::Stub>> stubs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<DataConnection>> data_
      ABSL_GUARDED_BY(mu_);  // per server, maybe null
};

}  // namespace ps

#endif  // PS_WORKER_KV_CLIENT_H_
