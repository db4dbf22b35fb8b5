#include "scheduler/scheduler_core.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/config.h"
#include "common/file_util.h"
#include "common/model_io.h"
#include "common/privacy.h"
#include "common/report.h"
#include "common/rpc.h"
#include "common/sealed_file.h"
#include "common/status_macros.h"
#include "common/tables.h"
#include "proto/ps.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace ps {
namespace {

const char* RoleName(rpc::Role role) { return role == rpc::SERVER ? "server" : "worker"; }

}  // namespace

SchedulerCore::SchedulerCore(const config::JobConfig& job, absl::Time start)
    : SchedulerCore(job, start, Options()) {}

SchedulerCore::SchedulerCore(const config::JobConfig& job, absl::Time start, Options options)
    : job_(job),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      created_(start),
      liveness_(absl::Milliseconds(job.cluster().heartbeat_timeout_ms()),
                absl::Milliseconds(job.cluster().scheduler_timeout_ms())),
      rebalancer_(job.cluster()),
      shards_(job.data().shard_size()),
      eval_book_(job_) {
  MutexLock lock(&mu_);
  view_.set_state(rpc::WAITING);
  last_progress_ = start;
  dirty_ = true;
}

void SchedulerCore::SetListenAddress(const std::string& host, int port) {
  MutexLock lock(&mu_);
  host_ = host;
  port_ = port;
  dirty_ = true;
  SaveStateLocked();
}

void SchedulerCore::RemoveStateFile() {
  MutexLock lock(&mu_);
  if (options_.state_path.empty()) return;
  std::remove(options_.state_path.c_str());
  if (view_file_version_ != 0) {
    std::remove(ViewFilePath(options_.state_path, view_file_version_).c_str());
  }
}

std::string ViewFilePath(const std::string& state_path, uint64_t version) {
  return absl::StrCat(state_path, ".view-", version);
}

absl::StatusOr<rpc::SchedulerState> ReadSchedulerState(const std::string& path) {
  auto bytes = ReadSealedFile(path, kMaxStateFileBytes);
  if (!bytes.ok()) return bytes.status();
  rpc::SchedulerState s;
  if (!s.ParseFromString(*bytes) || !s.has_job()) {
    return absl::DataLossError(absl::StrCat(path, " is not a state file"));
  }
  if (s.view_file_version() != 0) {
    const std::string view_path = ViewFilePath(path, s.view_file_version());
    auto view = ReadSealedFile(view_path, kMaxStateFileBytes);
    if (!view.ok()) return view.status();
    if (!s.mutable_view()->ParseFromString(*view) || s.view().version() != s.view_file_version()) {
      return absl::DataLossError(absl::StrCat(view_path, " is not the view file of ", path));
    }
  }
  return s;
}

std::string SchedulerCore::latest_checkpoint() const {
  MutexLock lock(&mu_);
  return latest_checkpoint_;
}

absl::Status SchedulerCore::ResumeFrom(const FoundCheckpoint& found) {
  MutexLock lock(&mu_);
  const rpc::CheckpointManifest& m = found.manifest;
  if (absl::Status s = CheckpointCompatible(m.job(), job_); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot resume from ", found.dir, ": ", s.message()));
  }
  if (m.epochs_done() >= job_.train().epochs()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot resume from ", found.dir, ": it has ", m.epochs_done(),
                     " epochs done and train.epochs is ", job_.train().epochs(), ": nothing left to train"));
  }
  resume_dir_ = found.dir;
  start_epoch_ = m.epochs_done();
  start_clock_ = m.next_clock();
  latest_checkpoint_ = found.dir;
  latest_checkpoint_epochs_ = m.epochs_done();
  LoadProgressLocked(m.progress());
  resumed_seconds_ = m.progress().seconds();
  dirty_ = true;
  spdlog::info("resuming from checkpoint {}: {} epoch{} done; training starts at epoch {}{}", found.dir,
               m.epochs_done(), m.epochs_done() == 1 ? "" : "s", m.epochs_done() + 1,
               job_.job().mode() == config::BSP ? absl::StrCat(", clock ", m.next_clock()) : "");
  return absl::OkStatus();
}

absl::StatusOr<rpc::RegisterResponse> SchedulerCore::Register(const rpc::RegisterRequest& req) {
  MutexLock lock(&mu_);
  if (state_ == rpc::FAILED) return absl::AbortedError(absl::StrCat("the job failed: ", failure_));
  Node node;
  node.role = req.role();
  if (req.role() == rpc::SERVER && req.standby()) {
    if (req.address().empty()) return absl::InvalidArgumentError("a server must give its address");
    if (state_ == rpc::DONE) return absl::FailedPreconditionError("the job is over");
    node.standby = true;
    node.rank = job_.cluster().num_servers() + standbys_registered_++;
  } else if (req.role() == rpc::SERVER) {
    if (req.address().empty()) return absl::InvalidArgumentError("a server must give its address");
    if (servers_registered_ >= job_.cluster().num_servers()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the job already has its ", job_.cluster().num_servers(), " servers (cluster.num_servers)"));
    }
    node.rank = servers_registered_++;
  } else if (req.role() == rpc::WORKER && req.standby()) {
    if (state_ == rpc::DONE) return absl::FailedPreconditionError("the job is over");
    node.standby = true;
    node.rank = -1;  // until it takes over a dead worker's
  } else if (req.role() == rpc::WORKER) {
    if (workers_registered_ >= job_.cluster().num_workers()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the job already has its ", job_.cluster().num_workers(), " workers (cluster.num_workers)"));
    }
    node.rank = workers_registered_++;
  } else {
    return absl::InvalidArgumentError("register: role must be SERVER or WORKER");
  }
  node.id = next_node_id_++;
  node.address = req.address();
  node.metrics_address = req.metrics_address();
  node.data_address = req.data_address();
  nodes_[node.id] = node;
  liveness_.Heard(node.id, clock_->Now());
  spdlog::info("{}{} {} registered{}{}", node.standby ? "standby " : "", RoleName(node.role),
               node.rank, node.address.empty() ? "" : " at ", node.address);
  Audit("member_registered", {{"role", RoleName(node.role)},
                              {"rank", absl::StrCat(node.rank)},
                              {"node_id", absl::StrCat(node.id)},
                              {"standby", node.standby ? "true" : "false"},
                              {"address", node.address}});
  if (node.standby && node.role == rpc::WORKER) {
    // Waits in the wings.
  } else if (node.standby) {
    if (view_.version() > 0) {
      // Joins the view's server list (holding nothing yet).
      AddServerInfoLocked(node);
      view_.set_version(view_.version() + 1);
      // Partitions short of backups (a server died with no standby) get it now.
      RefillBackupsLocked();
    }
  } else if (servers_registered_ == job_.cluster().num_servers() &&
             workers_registered_ == job_.cluster().num_workers()) {
    BuildViewLocked();
  }
  rpc::RegisterResponse resp;
  resp.set_node_id(node.id);
  resp.set_rank(node.rank);
  *resp.mutable_config() = job_;
  resp.set_start_epoch(start_epoch_);
  resp.set_start_clock(start_clock_);
  dirty_ = true;
  SaveStateLocked();
  return resp;
}

void SchedulerCore::AddServerInfoLocked(const Node& node) {
  while (view_.servers_size() <= node.rank) view_.add_servers()->set_rank(view_.servers_size() - 1);
  rpc::ServerInfo* info = view_.mutable_servers(node.rank);
  info->set_rank(node.rank);
  info->set_address(node.address);
  if (job_.cluster().data_plane() == config::TCP) info->set_data_address(node.data_address);
  info->set_node_id(node.id);
  info->set_standby(node.standby);
  info->set_dead(node.dead);
}

void SchedulerCore::BuildViewLocked() {
  const int n = job_.cluster().num_servers();
  const int r = job_.cluster().replication();
  view_.clear_servers();
  for (const auto& [id, node] : nodes_) {
    if (node.role == rpc::SERVER) AddServerInfoLocked(node);
  }
  // A resumed job: the primaries load their partitions first.
  PlaceInitially(job_.cluster().num_partitions(), n, r, resume_dir_, &view_);
  view_.clear_live_workers();
  for (const auto& [id, node] : nodes_) {
    if (node.role == rpc::WORKER && node.rank >= 0) view_.add_live_workers(node.rank);
  }
  std::sort(view_.mutable_live_workers()->begin(), view_.mutable_live_workers()->end());
  view_.set_version(view_.version() + 1);
  state_ = rpc::RUNNING;
  view_.set_state(state_);
  // Heartbeats count from here: a server that registered first waited in
  // the start barrier for the others, without heartbeats, and was declared
  // dead as soon as the job ran (compose, when containers came up far apart).
  liveness_.Restart(clock_->Now());
  spdlog::info("all {} servers and {} workers registered; {} partitions placed (map version {})", n,
               job_.cluster().num_workers(), job_.cluster().num_partitions(), view_.version());
}

absl::StatusOr<rpc::HeartbeatResponse> SchedulerCore::Heartbeat(const rpc::HeartbeatRequest& req,
                                                                absl::Time now) {
  MutexLock lock(&mu_);
  rpc::HeartbeatResponse resp;
  auto it = nodes_.find(req.node_id());
  // A node declared dead is told so (a server then steps down).
  resp.set_known(it != nodes_.end() && !it->second.dead);
  resp.set_view_version(view_.version());
  resp.set_state(state_);
  resp.set_message(failure_);
  if (it == nodes_.end() || it->second.dead) return resp;
  Node& node = it->second;
  if (!node.left) liveness_.Heard(node.id, now);
  resp.set_rank(node.rank);
  if (node.role == rpc::WORKER) {
    node.samples_done = req.samples_done();
    node.epoch = req.epoch();
    node.loss_sum = req.loss_sum();
    node.epoch_samples = req.epoch_samples();
    if (req.train_examples() > 0) train_examples_ = req.train_examples();
  } else if (node.role == rpc::SERVER) {
    // Traffic of the partitions it is primary of, as a moving average.
    if (node.last_load_report != absl::Time()) {
      std::map<uint32_t, uint64_t> bytes;
      for (const rpc::PartitionLoad& l : req.partition_load()) bytes[l.partition()] += l.bytes();
      rebalancer_.ReportTraffic(view_, node.rank, bytes,
                                absl::ToDoubleSeconds(now - node.last_load_report));
    }
    node.last_load_report = now;
    // Which of its backup copies are complete (no version bump: only
    // promotion decisions and psctl read this).
    const std::set<uint32_t> synced(req.synced_partitions().begin(), req.synced_partitions().end());
    for (int p = 0; p < view_.placement_size(); ++p) {
      rpc::Placement* pl = view_.mutable_placement(p);
      auto* list = pl->mutable_synced_backups();
      const bool is_backup =
          Holds(pl->backups(), node.rank);
      const bool listed = Holds(*list, node.rank);
      if (is_backup && synced.count(p) > 0 && !listed) {
        list->Add(node.rank);
        dirty_ = view_file_stale_ = true;
      } else if ((!is_backup || synced.count(p) == 0) && listed) {
        Drop(list, node.rank);
        dirty_ = view_file_stale_ = true;
      }
    }
  }
  SaveStateLocked();
  return resp;
}

void SchedulerCore::BarrierViewLocked(rpc::BarrierResponse* resp) const {
  rpc::ClusterView* v = resp->mutable_view();
  v->set_version(view_.version());
  v->set_state(view_.state());
  v->set_message(view_.message());
  *v->mutable_live_workers() = view_.live_workers();
  resp->set_view_omitted(true);
}

rpc::ClusterView SchedulerCore::View() const {
  MutexLock lock(&mu_);
  return view_;
}

rpc::JobStatus SchedulerCore::Status(absl::Time now) const {
  MutexLock lock(&mu_);
  rpc::JobStatus s;
  s.set_job(job_.job().name());
  s.set_mode(ModeName(job_.job().mode()));
  s.set_state(state_);
  s.set_failure(failure_);
  *s.mutable_view() = view_;
  s.set_epochs(job_.train().epochs());
  s.set_epochs_evaluated(static_cast<int32_t>(eval_book_.history().size()));
  s.set_seconds(started_ == absl::Time() ? 0 : absl::ToDoubleSeconds(now - started_));
  for (const auto& [id, node] : nodes_) {
    rpc::MemberStatus* m = s.add_members();
    m->set_node_id(id);
    m->set_role(node.role);
    m->set_rank(node.rank);
    m->set_address(node.address);
    m->set_metrics_address(node.metrics_address);
    m->set_state(node.dead ? "dead" : node.left ? "left" : node.standby ? "standby" : "alive");
    m->set_heartbeat_age_ms(absl::ToInt64Milliseconds(
        liveness_.tracked(node.id) || node.last_heard == absl::InfinitePast()
            ? liveness_.SilentFor(node.id, now)
            : std::max(absl::ZeroDuration(), now - node.last_heard)));
    m->set_epoch(node.epoch);
    m->set_samples_done(node.samples_done);
    if (node.role == rpc::SERVER) {
      m->set_draining(node.draining);
      for (int p = 0; p < view_.placement_size(); ++p) {
        const rpc::Placement& pl = view_.placement(p);
        if (pl.primary() == node.rank) {
          m->set_partitions_primary(m->partitions_primary() + 1);
          m->set_load_bytes_per_s(m->load_bytes_per_s() + rebalancer_.load(p));
        }
        if (Holds(pl.backups(), node.rank)) {
          m->set_partitions_backup(m->partitions_backup() + 1);
        }
      }
    }
  }
  s.set_migrations(rebalancer_.migrations());
  s.set_server_failovers(server_failovers_);
  s.set_promotions(promotions_);
  s.set_worker_takeovers(worker_takeovers_);
  s.set_shards_done(shards_done_);
  s.set_migrating(rebalancer_.Describe());
  return s;
}

size_t SchedulerCore::ParticipantsLocked(const std::string& barrier) const {
  size_t n = 0;
  for (const auto& [id, node] : nodes_) {
    if (node.role == rpc::WORKER && !node.dead && node.rank >= 0) ++n;
  }
  if (barrier == "start" || barrier == "ready") {
    return static_cast<size_t>(job_.cluster().num_servers() + job_.cluster().num_workers());
  }
  return n;
}

void SchedulerCore::MaybeReleaseLocked(const std::string& name, std::vector<BarrierDone>* ready) {
  BarrierState& b = barriers_[name];
  if (b.released || state_ != rpc::RUNNING) return;
  // Who arrived and is still alive: a worker that arrived and then died (no
  // standby took its rank) must not stand in for a live one.
  size_t arrived = b.arrived.size();
  if (name != "start" && name != "ready") {
    arrived = 0;
    for (uint32_t id : b.arrived) {
      auto node = nodes_.find(id);
      arrived += node != nodes_.end() && !node->second.dead;
    }
  }
  if (arrived < ParticipantsLocked(name)) return;
  if (name == "end") {
    if (!end_pending_ && finished_ == absl::Time()) {
      // Released by Poll once the model is saved.
      end_pending_ = true;
      finished_ = clock_->Now();
      dirty_ = true;
      work_cv_.Signal();
    }
    return;
  }
  if (name.rfind("eval-", 0) == 0) {
    // Released once the evaluation is merged (and the best model saved).
    int32_t epoch = -1;
    if (!absl::SimpleAtoi(name.substr(5), &epoch) || !eval_book_.evaluated(epoch)) return;
    if (eval_book_.stop_early()) b.stop = true;
  }
  if (const int32_t epoch = CheckpointEpochLocked(name, b);
      epoch >= 0 && checkpoint_tried_.count(epoch) == 0) {
    // Released by Poll once the checkpoint is written: nobody pushes meanwhile.
    if (checkpoint_pending_ != epoch) {
      checkpoint_pending_ = epoch;
      dirty_ = true;
      work_cv_.Signal();
    }
    return;
  }
  b.released = true;
  // Kept (a name and a flag in the state), never forgotten: a standby that
  // takes over a rank in BSP replays the job's barriers from the first, and
  // a forgotten one would wait for everyone again. Who arrived is not needed.
  b.arrived.clear();
  dirty_ = true;
  if (options_.barrier_waited) options_.barrier_waited(name, clock_->Now() - b.first_arrival);
  if (name == "ready") {
    // A resumed job's clock goes on from the checkpoint's.
    started_ = clock_->Now() - absl::Seconds(resumed_seconds_);
    spdlog::info("training starts: mode {}, {} epochs, batch {} per worker", ModeName(job_.job().mode()),
                 job_.train().epochs(), job_.train().batch_size());
  }
  ready->swap(b.waiting);
}

void SchedulerCore::Barrier(const rpc::BarrierRequest& req, BarrierDone done) {
  std::vector<BarrierDone> ready;
  rpc::BarrierResponse resp;
  {
    ReleasableMutexLock lock(&mu_);
    if (state_ == rpc::FAILED) {
      const std::string why = failure_;
      lock.Release();
      done(absl::AbortedError(absl::StrCat("the job failed: ", why)));
      return;
    }
    auto arriving = nodes_.find(req.node_id());
    if (arriving == nodes_.end()) {
      lock.Release();
      done(absl::NotFoundError(absl::StrCat("node ", req.node_id(), " is not registered")));
      return;
    }
    // An arrival is a sign of life too (servers heartbeat only after the
    // start and ready barriers).
    if (!arriving->second.left) liveness_.Heard(arriving->first, clock_->Now());
    BarrierState& b = barriers_[req.name()];
    if (b.released) {
      BarrierViewLocked(&resp);
      resp.set_stop(b.stop);
      lock.Release();
      done(resp);
      return;
    }
    if (b.arrived.empty()) b.first_arrival = clock_->Now();
    // An arrival alone is not written to the state: a restarted scheduler's
    // members re-send the barrier calls it lost (arrivals are idempotent), so
    // only releases (and stop votes) are. Writing every arrival made a
    // barrier of N workers cost N state writes.
    b.arrived.insert(req.node_id());
    dirty_ |= req.want_stop() && !b.stop;
    b.stop |= req.want_stop();
    b.waiting.push_back(std::move(done));
    MaybeReleaseLocked(req.name(), &ready);
    BarrierViewLocked(&resp);
    resp.set_stop(b.stop);
    SaveStateLocked();
  }
  for (auto& d : ready) d(resp);
}

absl::StatusOr<rpc::NextShardResponse> SchedulerCore::NextShard(const rpc::NextShardRequest& req) {
  MutexLock lock(&mu_);
  RETURN_IF_ERROR(shards_.SetExamples(req.epoch(), req.train_examples()));
  auto node = nodes_.find(req.node_id());
  if (node != nodes_.end() && req.request_id() != 0 &&
      req.request_id() == node->second.shard_request_id) {
    return node->second.shard_response;  // a retry: the same answer
  }
  // Asking for a shard means the previous one is done.
  if (node != nodes_.end()) node->second.shard_epoch = -1;
  rpc::NextShardResponse resp;
  if (const std::optional<ShardQueue::Shard> shard = shards_.Next(req.epoch())) {
    resp.set_has_shard(true);
    resp.set_shard(shard->index);
    resp.set_begin(shard->begin);
    resp.set_end(shard->end);
  }
  if (resp.has_shard()) ++shards_done_;
  if (resp.has_shard() && node != nodes_.end()) {
    node->second.shard_epoch = req.epoch();
    node->second.shard_begin = resp.begin();
    node->second.shard_end = resp.end();
  }
  if (node != nodes_.end()) {
    node->second.shard_request_id = req.request_id();
    node->second.shard_response = resp;
  }
  dirty_ = true;
  SaveStateLocked();  // before the answer: a restarted scheduler must not hand it out again
  return resp;
}

absl::Status SchedulerCore::SubmitEval(const rpc::SubmitEvalRequest& req) {
  {
    MutexLock lock(&mu_);
    auto taken = eval_book_.Add(req);
    if (!taken.ok()) return taken.status();
    if (!*taken) return absl::OkStatus();
    if (req.train_samples() > 0 && req.epoch() == 0) {
      // Every worker's epoch-0 samples add up to the training set.
      train_examples_ = std::max(train_examples_, eval_book_.SamplesOf(0));
    }
    dirty_ = true;
    SaveStateLocked();
  }
  return FinishEval(req.epoch());
}

absl::Status SchedulerCore::FinishEval(int32_t epoch) {
  std::vector<BarrierDone> ready;
  rpc::BarrierResponse resp;
  std::optional<EvalBook::Shares> shares;
  double seconds = 0;
  {
    MutexLock lock(&mu_);
    std::set<uint32_t> live;
    for (const auto& [id, node] : nodes_) {
      if (node.role == rpc::WORKER && node.rank >= 0 && !node.dead) live.insert(id);
    }
    shares =
        eval_book_.TakeIfComplete(epoch, live, [this](uint32_t id) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          auto node = nodes_.find(id);  // under mu_: called within this block
          return node == nodes_.end() ? -1 : node->second.rank;
        });
    if (!shares.has_value()) return absl::OkStatus();
    seconds = absl::ToDoubleSeconds(clock_->Now() - started_);
  }
  // Metrics (sorts over whole sets) are computed without the lock, so
  // heartbeats and barriers are not held up behind them.
  auto merged = EvalBook::Merge(job_, std::move(*shares), seconds);
  if (!merged.ok()) return merged.status();
  {
    MutexLock lock(&mu_);
    auto save_first = eval_book_.Record(epoch, std::move(*merged));
    if (!save_first.ok()) return save_first.status();
    if (*save_first) {
      work_cv_.Signal();  // Poll saves the best model before releasing "eval-E"
    } else {
      MaybeReleaseLocked(absl::StrCat("eval-", epoch), &ready);
      BarrierViewLocked(&resp);
      resp.set_stop(barriers_[absl::StrCat("eval-", epoch)].stop);
    }
    dirty_ = true;
    SaveStateLocked();
  }
  for (auto& d : ready) d(resp);
  return absl::OkStatus();
}

void SchedulerCore::WaitForWork(absl::Duration timeout) {
  MutexLock lock(&mu_);
  if (eval_book_.save_pending() >= 0 || end_pending_ || !suspects_.empty() ||
      checkpoint_pending_ >= 0)
    return;
  work_cv_.WaitWithTimeout(&mu_, timeout);
}

void SchedulerCore::FailLocked(const std::string& message, std::vector<BarrierDone>* aborted) {
  if (state_ == rpc::FAILED || state_ == rpc::DONE) return;
  spdlog::error("job failed: {}", message);
  Audit("job_failed", {{"why", message}});
  dirty_ = true;
  state_ = rpc::FAILED;
  failure_ = message;
  over_at_ = clock_->Now();
  view_.set_state(state_);
  view_.set_message(message);
  view_.set_version(view_.version() + 1);
  for (auto& [name, b] : barriers_) {
    for (auto& d : b.waiting) aborted->push_back(std::move(d));
    b.waiting.clear();
  }
}

void SchedulerCore::WorkerDiedLocked(Node& node, absl::Duration silent,
                                     std::vector<std::pair<BarrierDone, rpc::BarrierResponse>>* ready,
                                     std::vector<BarrierDone>* aborted) {
  node.dead = true;
  node.left = true;  // nobody waits for it to leave either
  ForgetLocked(node);
  dirty_ = true;
  if (node.rank < 0) {
    spdlog::warn("standby worker node {} sent no heartbeat for {}", node.id,
                 absl::FormatDuration(silent));
    return;  // it held no rank
  }
  if (node.shard_epoch >= 0) {
    shards_.Requeue(node.shard_epoch, node.shard_begin, node.shard_end);
    node.shard_epoch = -1;
  }
  // A standby worker takes its place: same rank (so the servers keep
  // waiting for that rank's clocks), resuming where the rank's clocks stand.
  // What the dead one had submitted to unfinished barriers and evaluations
  // is dropped; its successor does it again.
  for (auto& [id, standby] : nodes_) {
    if (standby.role != rpc::WORKER || !standby.standby || standby.dead || standby.left ||
        standby.rank >= 0) {
      continue;
    }
    standby.rank = node.rank;
    standby.standby = false;
    ++worker_takeovers_;
    for (auto& [name, b] : barriers_) {
      if (!b.released) b.arrived.erase(node.id);
    }
    eval_book_.Drop(node.id);
    spdlog::warn("worker {} sent no heartbeat for {}: standby worker node {} takes over its rank",
                 standby.rank, absl::FormatDuration(silent), id);
    Audit("worker_takeover", {{"rank", absl::StrCat(standby.rank)},
                              {"dead_node_id", absl::StrCat(node.id)},
                              {"standby_node_id", absl::StrCat(id)}});
    return;
  }
  auto* live = view_.mutable_live_workers();
  Drop(live, node.rank);
  view_.set_version(view_.version() + 1);
  if (live->empty()) {
    FailLocked(absl::StrFormat("worker %d sent no heartbeat for %s and no worker is left", node.rank,
                               absl::FormatDuration(silent)),
               aborted);
    return;
  }
  spdlog::warn("worker {} sent no heartbeat for {}: the job goes on with {} worker{} (map version {})",
               node.rank, absl::FormatDuration(silent), live->size(), live->size() == 1 ? "" : "s",
               view_.version());
  Audit(
      "member_dead",
      {{"role", "worker"}, {"rank", absl::StrCat(node.rank)}, {"node_id", absl::StrCat(node.id)}});
  // Barriers stop waiting for it.
  for (auto& [name, b] : barriers_) {
    std::vector<BarrierDone> now_ready;
    MaybeReleaseLocked(name, &now_ready);
    rpc::BarrierResponse resp;
    BarrierViewLocked(&resp);
    resp.set_stop(b.stop);
    for (auto& d : now_ready) ready->emplace_back(std::move(d), resp);
  }
}

bool SchedulerCore::ServerDiedLocked(Node& node, const std::string& why,
                                     std::vector<BarrierDone>* aborted) {
  const std::string who = absl::StrFormat("server %d%s%s", node.rank, node.address.empty() ? "" : " at ",
                                          node.address);
  // Partitions whose every replica is gone cannot go on.
  const auto alive = [this](int32_t rank) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return !ServerDeadLocked(rank);  // under mu_: used within this function
  };
  const std::vector<int> lost = PartitionsLostWithout(view_, node.rank, alive);
  bool other_server = false;
  for (const auto& [id, n] : nodes_) other_server |= n.role == rpc::SERVER && !n.dead && n.id != node.id;
  if (!lost.empty() && (latest_checkpoint_.empty() || !other_server)) {
    FailLocked(absl::StrFormat(
                   "%s %s and %d of its partitions have no other complete replica "
                   "(cluster.replication is %d) and %s",
                   who, why, lost.size(), job_.cluster().replication(),
                   latest_checkpoint_.empty()
                       ? "no checkpoint to restore them from (checkpoint.every_epochs)"
                       : "no live server to restore them on"),
               aborted);
    return false;
  }
  node.dead = true;
  node.left = true;  // nobody waits for it to leave
  ForgetLocked(node);
  dirty_ = true;
  const std::string held = PartitionsOf(view_, node.rank);
  AddServerInfoLocked(node);
  if (!lost.empty()) RestoreLostLocked(lost, absl::StrCat(who, " ", why));
  const int promoted = PromoteBackupsOf(&view_, node.rank, alive);
  const int refilled = RefillBackupsLocked();
  view_.set_version(view_.version() + 1);
  ++server_failovers_;
  promotions_ += promoted;
  spdlog::warn("{} {}: it was {}; {} partitions promoted to a backup, {} new backups placed "
               "(map version {})",
               who, why, held, promoted, refilled, view_.version());
  Audit("server_failover", {{"server", who},
                            {"why", why},
                            {"partitions_promoted", absl::StrCat(promoted)},
                            {"backups_placed", absl::StrCat(refilled)},
                            {"map_version", absl::StrCat(view_.version())}});
  return true;
}

void SchedulerCore::ForgetLocked(Node& node) {
  const absl::Time last = liveness_.Forget(node.id);
  if (last != absl::InfinitePast()) node.last_heard = last;
}

bool SchedulerCore::ServerDeadLocked(int rank) const {
  for (const auto& [id, node] : nodes_) {
    if (node.role == rpc::SERVER && node.rank == rank) return node.dead;
  }
  return true;
}

int SchedulerCore::RefillBackupsLocked() {
  std::set<int32_t> servers;
  for (const auto& [id, node] : nodes_) {
    if (node.role == rpc::SERVER && !node.dead && !node.left && !node.draining) {
      servers.insert(node.rank);
    }
  }
  return RefillBackups(&view_, job_.cluster().replication() - 1, servers);
}

void SchedulerCore::AbandonWaiters() {
  std::vector<BarrierDone> waiting;
  {
    MutexLock lock(&mu_);
    for (auto& [name, b] : barriers_) {
      for (auto& d : b.waiting) waiting.push_back(std::move(d));
      b.waiting.clear();
    }
  }
  for (auto& d : waiting) d(absl::UnavailableError("this scheduler no longer leads the job"));
}

void SchedulerCore::FailFrom(uint32_t node_id, const std::string& message) {
  {
    MutexLock lock(&mu_);
    auto it = nodes_.find(node_id);
    if (it != nodes_.end()) {
      it->second.left = true;  // it exits now; do not wait for it
      ForgetLocked(it->second);
    }
  }
  Fail(message);
}

void SchedulerCore::Fail(const std::string& message) {
  std::vector<BarrierDone> aborted;
  {
    MutexLock lock(&mu_);
    FailLocked(message, &aborted);
    SaveStateLocked();
  }
  for (auto& d : aborted) d(absl::AbortedError(absl::StrCat("the job failed: ", message)));
}

absl::Status SchedulerCore::Leave(uint32_t node_id) {
  MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("node ", node_id, " unknown"));
  if (!it->second.left) {
    Audit("member_left", {{"role", RoleName(it->second.role)},
                          {"rank", absl::StrCat(it->second.rank)},
                          {"node_id", absl::StrCat(node_id)}});
  }
  it->second.left = true;
  ForgetLocked(it->second);
  dirty_ = true;
  SaveStateLocked();
  return absl::OkStatus();
}

const SchedulerCore::Node* SchedulerCore::ServerLocked(int rank) const {
  for (const auto& [id, node] : nodes_) {
    if (node.role == rpc::SERVER && node.rank == rank) return &node;
  }
  return nullptr;
}

void SchedulerCore::BalanceLocked(absl::Time now) {
  if (state_ != rpc::RUNNING) return;
  Rebalancer::Servers servers;
  for (const auto& [id, node] : nodes_) {
    if (node.role != rpc::SERVER || node.dead) continue;
    servers.alive.insert(node.rank);
    if (node.draining) {
      servers.draining.insert(node.rank);
    } else if (!node.left) {
      servers.eligible.insert(node.rank);
    }
  }
  rebalancer_.Step(now, servers, &view_, [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    RefillBackupsLocked();  // under mu_: Step runs within BalanceLocked
  });
}

absl::StatusOr<uint32_t> SchedulerCore::Drain(int32_t rank) {
  MutexLock lock(&mu_);
  Node* target = nullptr;
  for (auto& [id, node] : nodes_) {
    if (node.role == rpc::SERVER && node.rank == rank) target = &node;
  }
  if (target == nullptr) return absl::NotFoundError(absl::StrCat("no server of rank ", rank));
  if (target->dead) return absl::FailedPreconditionError(absl::StrCat("server ", rank, " is dead"));
  if (state_ != rpc::RUNNING) return absl::FailedPreconditionError("the job is not running");
  if (!target->draining) {
    int others = 0;
    for (const auto& [id, node] : nodes_) {
      others += node.role == rpc::SERVER && !node.dead && !node.left && !node.draining &&
                node.rank != rank;
    }
    if (others < job_.cluster().replication()) {
      return absl::FailedPreconditionError(
          absl::StrCat("draining server ", rank, " would leave ", others,
                       " servers for replication ", job_.cluster().replication()));
    }
    target->draining = true;
    spdlog::info("draining server {} ({})", rank, PartitionsOf(view_, rank));
    Audit("drain_started", {{"server_rank", absl::StrCat(rank)}});
    work_cv_.Signal();
  }
  uint32_t left = 0;
  for (const rpc::Placement& pl : view_.placement()) {
    left += pl.primary() == rank;
    left += std::count(pl.backups().begin(), pl.backups().end(), rank);
  }
  return left;
}

void SchedulerCore::ProbeSuspects(absl::Time now) {
  std::map<int32_t, std::string> suspects;
  std::map<int32_t, std::string> addresses;
  {
    MutexLock lock(&mu_);
    suspects.swap(suspects_);
    for (const auto& [rank, error] : suspects) {
      probed_[rank] = now;
      for (const auto& [id, node] : nodes_) {
        if (node.role == rpc::SERVER && node.rank == rank && !node.dead) addresses[rank] = node.address;
      }
    }
  }
  for (const auto& [rank, error] : suspects) {
    auto address = addresses.find(rank);
    if (address == addresses.end()) continue;
    auto stub = rpc::ParameterServer::NewStub(MakeChannel(address->second));
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Milliseconds(500)));  // a live server answers Stats at once
    rpc::StatsResponse stats;
    const grpc::Status probe = stub->Stats(&ctx, rpc::StatsRequest(), &stats);
    if (probe.ok()) {
      std::vector<BarrierDone> aborted;
      {
        MutexLock lock(&mu_);
        if (state_ != rpc::RUNNING) return;
        CutFromAWorkerLocked(rank, clock_->Now(), &aborted);
        SaveStateLocked();
      }
      for (auto& d : aborted) d(absl::AbortedError("the job failed"));
      continue;
    }
    std::vector<BarrierDone> aborted;
    {
      MutexLock lock(&mu_);
      if (state_ != rpc::RUNNING) return;
      // The probe may have failed on the scheduler's side of a cut: trusted
      // only while a majority was heard from in the last two heartbeats
      // (right after a cut, before anyone is quiet, it was not).
      if (liveness_.isolated() ||
          !liveness_.MajorityHeardWithin(
              clock_->Now(), 2 * absl::Milliseconds(job_.cluster().heartbeat_interval_ms()) +
                       absl::Milliseconds(100))) {
        spdlog::warn(
            "server {} was reported unreachable ({}) and did not answer the scheduler's "
            "probe either, but the scheduler hears from too few members to trust that",
            rank, error);
        continue;
      }
      for (auto& [id, node] : nodes_) {
        if (node.role != rpc::SERVER || node.rank != rank || node.dead || node.left) continue;
        ServerDiedLocked(node,
                         absl::StrCat("was reported unreachable by a client (", error,
                                      ") and did not answer the scheduler's probe (",
                                      probe.error_message(), ")"),
                         &aborted);
      }
      SaveStateLocked();
    }
    for (auto& d : aborted) d(absl::AbortedError("the job failed"));
  }
}

void SchedulerCore::CutFromAWorkerLocked(int32_t rank, absl::Time now,
                                         std::vector<BarrierDone>* aborted) {
  const absl::Duration timeout = absl::Milliseconds(job_.cluster().heartbeat_timeout_ms());
  // A report older than a heartbeat timeout is over: a worker still cut
  // off reports again on its next retry round.
  for (auto it = unreachable_.begin(); it != unreachable_.end();) {
    it = now - it->second.reported > timeout ? unreachable_.erase(it) : std::next(it);
  }
  for (auto it = cut_by_.begin(); it != cut_by_.end();) {
    it = now - it->second > CutMemory() ? cut_by_.erase(it) : std::next(it);
  }
  // Not from the wrong side of a cut of the scheduler's own.
  if (liveness_.isolated()) return;
  Node* server = nullptr;
  for (auto& [id, node] : nodes_) {
    if (node.role == rpc::SERVER && node.rank == rank && !node.dead && !node.left) server = &node;
  }
  if (server == nullptr) return;
  int primaries = 0;  // moving a server that is primary of nothing helps nobody
  int alone = 0;      // its partitions without a complete copy elsewhere
  for (const rpc::Placement& pl : view_.placement()) {
    if (pl.primary() != rank) continue;
    ++primaries;
    bool copy = false;
    for (int b : pl.synced_backups()) copy |= !ServerDeadLocked(b);
    alone += !copy;
  }
  if (primaries == 0) return;
  for (const auto& [key, report] : unreachable_) {
    const auto [reporter, reported] = key;
    if (reported != rank) continue;
    auto w = nodes_.find(reporter);
    if (w == nodes_.end() || w->second.dead || w->second.left) continue;
    const std::string who = absl::StrFormat("worker %d", w->second.rank);
    // A worker that cannot reach several servers has a bad link of its own;
    // one that already had a server failed over this way may too.
    int others = 0;
    for (const auto& [k, r] : unreachable_) others += k.first == reporter && k.second != rank;
    if (others > 0 || cut_by_.contains(reporter)) {
      spdlog::warn("{} cannot reach server {} ({}), but {}: its own link, not the server's; the "
                   "server stays",
                   who, rank, report.error,
                   others > 0 ? absl::StrFormat("nor %d other server(s)", others)
                              : std::string("it had a server failed over this way already"));
      continue;
    }
    if (report.failing_for < timeout) {
      spdlog::info("server {} answers the scheduler but {} has not reached it for {} ({}); if "
                   "that lasts {} (cluster.heartbeat_timeout_ms) its partitions move to their "
                   "backups",
                   rank, who, absl::FormatDuration(report.failing_for), report.error,
                   absl::FormatDuration(timeout));
      continue;
    }
    if (alone > 0) {
      spdlog::warn("server {} answers the scheduler but {} has not reached it for {} ({}); {} of "
                   "its partitions have no other complete copy, so they stay",
                   rank, who, absl::FormatDuration(report.failing_for), report.error, alone);
      continue;
    }
    ServerDiedLocked(*server,
                     absl::StrFormat("answers the scheduler but %s has not reached it for %s (%s): "
                                     "it is failed over as if it were dead",
                                     who, absl::FormatDuration(report.failing_for), report.error),
                     aborted);
    cut_by_[reporter] = now;
    for (auto it = unreachable_.begin(); it != unreachable_.end();) {
      it = it->first.second == rank ? unreachable_.erase(it) : std::next(it);
    }
    return;
  }
}

void SchedulerCore::Suspect(uint32_t reporter, int32_t rank, const std::string& error,
                            absl::Duration failing_for) {
  MutexLock lock(&mu_);
  if (state_ != rpc::RUNNING || ServerDeadLocked(rank)) return;
  const absl::Time now = clock_->Now();
  // Live workers' reports count towards a cut between a worker and a
  // server (CutFromAWorkerLocked); anyone's has the server probed.
  auto w = nodes_.find(reporter);
  if (w != nodes_.end() && w->second.role == rpc::WORKER && !w->second.dead && !w->second.left) {
    unreachable_[{reporter, rank}] = Unreachable{now, failing_for, error};
  }
  auto probed = probed_.find(rank);
  if (probed != probed_.end() && now - probed->second < absl::Milliseconds(500)) return;
  if (suspects_.emplace(rank, error).second) work_cv_.Signal();
}

rpc::JobState SchedulerCore::state() const {
  MutexLock lock(&mu_);
  return state_;
}

std::string SchedulerCore::failure() const {
  MutexLock lock(&mu_);
  return failure_;
}

bool SchedulerCore::Poll(absl::Time now) {
  if (!MayAct()) return false;  // deposed: the main loop stops
  std::vector<BarrierDone> aborted;
  std::vector<std::pair<BarrierDone, rpc::BarrierResponse>> released;
  std::vector<int32_t> pending_evals;
  bool finish = false;
  int32_t save_epoch = -1;
  int32_t checkpoint_epoch = -1;
  {
    MutexLock lock(&mu_);
    if (recheck_) {
      // Restored from a state file: what may have been complete when the
      // last scheduler stopped is looked at again.
      recheck_ = false;
      for (auto& [name, b] : barriers_) {
        std::vector<BarrierDone> now_ready;
        if (!b.released) MaybeReleaseLocked(name, &now_ready);
      }
      pending_evals = eval_book_.Waiting();
    }
    if (state_ == rpc::WAITING &&
        now - created_ > absl::Milliseconds(job_.cluster().connect_timeout_ms())) {
      FailLocked(absl::StrFormat("only %d of %d servers and %d of %d workers registered within %s",
                                 servers_registered_, job_.cluster().num_servers(),
                                 workers_registered_, job_.cluster().num_workers(),
                                 absl::FormatDuration(now - created_)),
                 &aborted);
    }
    if (state_ == rpc::RUNNING) {
      // Silent past the timeout, unless the scheduler seems cut off itself
      // (scheduler/liveness.h).
      for (uint32_t id : liveness_.Overdue(now)) {
        auto it = nodes_.find(id);
        if (it == nodes_.end() || it->second.left || it->second.dead) {
          liveness_.Forget(id);
          continue;
        }
        Node& node = it->second;
        const absl::Duration silent = liveness_.SilentFor(id, now);
        if (node.role == rpc::WORKER) {
          WorkerDiedLocked(node, silent, &released, &aborted);
          pending_evals = eval_book_.Waiting();
          continue;
        }
        if (!ServerDiedLocked(
                node,
                absl::StrFormat("sent no heartbeat for %s (cluster.heartbeat_timeout_ms)",
                                absl::FormatDuration(silent)),
                &aborted)) {
          break;
        }
      }
    }
    if (state_ == rpc::RUNNING) BalanceLocked(now);
    if (state_ == rpc::RUNNING && started_ != absl::Time() && !end_pending_ &&
        finished_ == absl::Time() && job_.train().progress_interval_ms() > 0 &&
        now - last_progress_ >= absl::Milliseconds(job_.train().progress_interval_ms())) {
      last_progress_ = now;
      uint64_t done = 0, epoch_samples = 0;
      double loss = 0;
      int32_t epoch = 0;
      for (const auto& [id, node] : nodes_) {
        if (node.role != rpc::WORKER) continue;
        done += node.samples_done;
        loss += node.loss_sum;
        epoch_samples += node.epoch_samples;
        epoch = std::max(epoch, node.epoch);
      }
      const double total = static_cast<double>(train_examples_) * job_.train().epochs();
      const double secs = absl::ToDoubleSeconds(now - started_);
      const double rate = secs > 0 ? done / secs : 0;
      const double pct = total > 0 ? 100.0 * done / total : 0;
      const double eta = rate > 0 ? (total - done) / rate : 0;
      spdlog::info("progress: epoch {}/{} {:.0f}% | {:.0f} samples/s | loss {:.4f} | ETA {:.0f}s",
                   epoch + 1, job_.train().epochs(), pct, rate,
                   epoch_samples > 0 ? loss / epoch_samples : 0.0, eta);
    }
    if (end_pending_ && state_ == rpc::RUNNING) {
      end_pending_ = false;
      finish = true;
    }
    if (eval_book_.save_pending() >= 0 && state_ == rpc::RUNNING) {
      save_epoch = eval_book_.save_pending();
    }
    if (checkpoint_pending_ >= 0 && state_ == rpc::RUNNING) checkpoint_epoch = checkpoint_pending_;
    SaveStateLocked();
  }
  ProbeSuspects(now);
  for (auto& d : aborted) d(absl::AbortedError("the job failed"));
  aborted.clear();
  for (auto& [done, resp] : released) done(resp);
  for (int32_t epoch : pending_evals) {
    if (absl::Status s = FinishEval(epoch); !s.ok()) Fail(std::string(s.message()));
  }
  if (save_epoch >= 0 && MayAct()) {
    // The workers wait at "eval-E" while the new best model is written.
    std::string unused;
    auto saved = SaveModel(job_.job().output_dir() + "/best_model", &unused);
    std::vector<BarrierDone> ready;
    rpc::BarrierResponse resp;
    {
      MutexLock lock(&mu_);
      eval_book_.BestSaved(save_epoch, saved.ok());
      if (!saved.ok()) {
        FailLocked(absl::StrCat("saving the best model: ", saved.status().message()), &aborted);
      } else {
        const std::string name = absl::StrCat("eval-", save_epoch);
        MaybeReleaseLocked(name, &ready);
        BarrierViewLocked(&resp);
        resp.set_stop(barriers_[name].stop);
      }
      dirty_ = true;
      SaveStateLocked();
    }
    for (auto& d : ready) d(resp);
    for (auto& d : aborted) d(absl::AbortedError(absl::StrCat("the job failed: ", saved.status().message())));
    aborted.clear();
  }
  if (checkpoint_epoch >= 0 && MayAct()) {
    // Every worker waits at the barrier ending the epoch while every primary
    // writes its partitions.
    std::string root, dir;
    {
      MutexLock lock(&mu_);
      root = CheckpointRoot(job_);
      dir = CheckpointDir(root, checkpoint_epoch + 1);
    }
    auto written = WriteCheckpoint(checkpoint_epoch, dir);
    std::vector<BarrierDone> ready;
    rpc::BarrierResponse resp;
    std::string name;
    {
      MutexLock lock(&mu_);
      checkpoint_pending_ = -1;
      checkpoint_tried_.insert(checkpoint_epoch);
      checkpoint_requested_ = false;
      if (written.ok()) {
        latest_checkpoint_ = dir;
        latest_checkpoint_epochs_ = checkpoint_epoch + 1;
        spdlog::info("checkpoint after epoch {}: {} partitions, {} bytes written in {:.3f} s to {}",
                     checkpoint_epoch + 1, written->num_partitions(), written->bytes(),
                     written->write_seconds(), dir);
        Audit("checkpoint_written", {{"epochs", absl::StrCat(checkpoint_epoch + 1)},
                                     {"dir", dir},
                                     {"bytes", absl::StrCat(written->bytes())}});
      } else {
        // Training goes on; the previous checkpoint stays the latest.
        spdlog::error("checkpoint after epoch {} failed: {}; training goes on{}", checkpoint_epoch + 1,
                      std::string(written.status().message()),
                      latest_checkpoint_.empty() ? "" : absl::StrCat(" (latest checkpoint: ", latest_checkpoint_, ")"));
      }
      name = CheckpointBarrierLocked(checkpoint_epoch);
      MaybeReleaseLocked(name, &ready);
      BarrierViewLocked(&resp);
      resp.set_stop(barriers_[name].stop);
      dirty_ = true;
      SaveStateLocked();
    }
    for (auto& d : ready) d(resp);
    if (written.ok()) {
      const int pruned = PruneCheckpoints(root, job_.checkpoint().keep());
      if (pruned > 0) spdlog::info("deleted {} older checkpoint{}", pruned, pruned == 1 ? "" : "s");
    }
  }
  if (finish && MayAct()) {
    absl::Status s = FinishJob();
    std::vector<BarrierDone> ready;
    rpc::BarrierResponse resp;
    {
      MutexLock lock(&mu_);
      if (!s.ok()) {
        FailLocked(std::string(s.message()), &aborted);
      } else {
        state_ = rpc::DONE;
        over_at_ = clock_->Now();
        view_.set_state(state_);
        view_.set_version(view_.version() + 1);
        BarrierState& b = barriers_["end"];
        b.released = true;
        ready.swap(b.waiting);
      }
      BarrierViewLocked(&resp);
      dirty_ = true;
      SaveStateLocked();
    }
    for (auto& d : ready) d(resp);
    for (auto& d : aborted) d(absl::AbortedError(absl::StrCat("the job failed: ", s.message())));
  }
  MutexLock lock(&mu_);
  if (state_ != rpc::DONE && state_ != rpc::FAILED) return false;
  bool all_left = true;
  for (const auto& [id, node] : nodes_) all_left &= node.left;
  return all_left ||
         now - over_at_ > absl::Milliseconds(job_.cluster().heartbeat_timeout_ms()) +
                              absl::Milliseconds(2 * job_.cluster().heartbeat_interval_ms());
}

absl::StatusOr<uint64_t> SchedulerCore::SaveModel(const std::string& dir, std::string* server_stats) {
  // Every primary writes its partitions. A server that dies meanwhile is
  // failed over, and its partitions' new primaries write them in a later
  // round (partition files are written atomically, so a rewrite is harmless).
  const int partitions = job_.cluster().num_partitions();
  std::vector<uint64_t> keys_of(partitions, 0);
  std::vector<bool> saved(partitions, false);
  std::map<int, std::string> stats_of;  // by rank
  const absl::Time give_up = absl::Now() + absl::Seconds(120);
  std::string last_error;
  for (int round = 0;; ++round) {
    const rpc::ClusterView view = View();
    if (view.state() == rpc::FAILED) return absl::AbortedError("the job failed while saving the model");
    for (const rpc::ServerInfo& server : view.servers()) {
      bool owes = false;
      for (int p = 0; p < view.partition_owner_size(); ++p) {
        owes |= view.partition_owner(p) == server.rank() && !saved[p];
      }
      if (server.dead() || !owes) continue;
      auto stub = rpc::ParameterServer::NewStub(MakeChannel(server.address()));
      rpc::SaveModelRequest req;
      req.set_dir(dir);
      rpc::SaveModelResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(DeadlineIn(std::min(absl::Seconds(30), give_up - absl::Now())));
      const grpc::Status s = stub->SaveModel(&ctx, req, &resp);
      if (!s.ok()) {
        last_error = absl::StrCat("saving the model on server ", server.rank(), " at ",
                                  server.address(), ": ", s.error_message());
        if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
            s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
          return absl::InternalError(last_error);
        }
        continue;
      }
      // Counted per partition: a partition written twice counts once.
      for (int i = 0; i < resp.partitions_size(); ++i) {
        const int p = resp.partitions(i);
        if (p >= 0 && p < partitions) {
          saved[p] = true;
          keys_of[p] = i < resp.partition_keys_size() ? resp.partition_keys(i) : 0;
        }
      }
      grpc::ClientContext stats_ctx;
      stats_ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
      rpc::StatsResponse stats;
      if (stub->Stats(&stats_ctx, rpc::StatsRequest(), &stats).ok()) {
        stats_of[server.rank()] = absl::StrFormat(
            "    {\"rank\": %d, \"pushes_applied\": %d, \"pushes_duplicate\": %d, "
            "\"pulls_served\": %d, \"pulls_waited\": %d, \"max_staleness_served\": %d, "
            "\"keys\": %d, \"replica_ops_sent\": %d, \"replica_ops_applied\": %d, "
            "\"snapshots_sent\": %d}",
            server.rank(), stats.pushes_applied(), stats.pushes_duplicate(), stats.pulls_served(),
            stats.pulls_parked(), stats.max_staleness_served(), stats.keys_stored(),
            stats.replica_ops_sent(), stats.replica_ops_applied(), stats.snapshots_sent());
      }
    }
    if (std::all_of(saved.begin(), saved.end(), [](bool b) { return b; })) break;
    if (absl::Now() >= give_up) {
      return absl::InternalError(absl::StrCat("the model could not be saved in full: ", last_error));
    }
    spdlog::warn("saving the model: some partitions are not written yet ({}); retrying", last_error);
    absl::SleepFor(absl::Milliseconds(200));  // retry backoff: a failover may be under way
  }
  uint64_t keys = 0;
  for (uint64_t k : keys_of) keys += k;
  server_stats->clear();
  for (const auto& [rank, text] : stats_of) {
    absl::StrAppend(server_stats, server_stats->empty() ? "" : ",\n", text);
  }
  if (absl::Status s =
          WriteManifest(dir, job_.cluster().num_partitions(), TablesForJob(job_), keys_of);
      !s.ok()) {
    return s;
  }
  // The job's config goes with the model: ps_predict needs the model's type and
  // preprocessing.
  if (absl::Status s = WriteFileAtomically(dir + "/job.yaml", JobConfigToYaml(job_)); !s.ok()) return s;
  return keys;
}

absl::Status SchedulerCore::FinishJob() {
  const std::string out = job_.job().output_dir();
  const std::string model_dir = out + "/model";
  std::string server_stats;
  auto keys = SaveModel(model_dir, &server_stats);
  if (!keys.ok()) return keys.status();
  int32_t best = -1;
  {
    MutexLock lock(&mu_);
    if (job_.train().early_stopping_patience() > 0) best = eval_book_.saved_best_epoch();
  }
  if (best >= 0) {
    // Early stopping: the job's model is the best one, not the last.
    std::error_code ec;
    std::filesystem::remove_all(out + "/last_model", ec);
    std::filesystem::rename(model_dir, out + "/last_model", ec);
    if (!ec) std::filesystem::rename(out + "/best_model", model_dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("keeping the best model: ", ec.message()));
    spdlog::info("the model of epoch {} (the best on validation) is kept; the last one is in {}/last_model",
                 best + 1, out);
  }
  std::string json;
  double wall = 0;
  {
    MutexLock lock(&mu_);
    wall = absl::ToDoubleSeconds(finished_ - started_);
    json = MetricsJson(RecordLocked(), wall, *keys, server_stats);
    if (absl::Status s = WriteJobReport(RecordLocked(), wall); !s.ok()) {
      spdlog::warn("could not write the report: {}", std::string(s.message()));
    }
  }
  const std::string metrics_path = out + "/metrics.json";
  if (absl::Status s = WriteFileAtomically(metrics_path, json); !s.ok()) return s;
  spdlog::info("model ({} keys) saved to {}; metrics in {}, report in {}/report.html", *keys, model_dir,
               metrics_path, out);
  Audit("model_saved", {{"dir", model_dir}, {"keys", absl::StrCat(*keys)}});
  return absl::OkStatus();
}

absl::StatusOr<rpc::TakeCheckpointResponse> SchedulerCore::RequestCheckpoint(bool request) {
  MutexLock lock(&mu_);
  if (request) {
    if (state_ != rpc::RUNNING) return absl::FailedPreconditionError("the job is not running");
    if (!checkpoint_requested_) spdlog::info("checkpoint requested: at the end of the current epoch");
    dirty_ |= !checkpoint_requested_;
    checkpoint_requested_ = true;
    SaveStateLocked();
  }
  rpc::TakeCheckpointResponse resp;
  resp.set_latest(latest_checkpoint_);
  resp.set_latest_epochs(latest_checkpoint_epochs_);
  resp.set_pending(checkpoint_requested_);
  return resp;
}

int32_t SchedulerCore::CheckpointEpochLocked(const std::string& name, const BarrierState& b) const {
  const int every = checkpoint_requested_ ? 1 : job_.checkpoint().every_epochs();
  if (every <= 0 || b.stop) return -1;
  const bool evaluates = job_.train().eval_every_epoch() || job_.train().early_stopping_patience() > 0;
  const std::string prefix = evaluates ? "eval-" : "epoch-";
  int32_t epoch = -1;
  if (name.rfind(prefix, 0) != 0 || !absl::SimpleAtoi(name.substr(prefix.size()), &epoch)) return -1;
  if ((epoch + 1) % every != 0 || epoch + 1 >= job_.train().epochs()) return -1;
  if (evaluates) {
    // Training stops after this epoch anyway (a worker reached max_iterations).
    auto trained = barriers_.find(absl::StrCat("epoch-", epoch));
    if (trained != barriers_.end() && trained->second.stop) return -1;
  }
  return epoch;
}

std::string SchedulerCore::CheckpointBarrierLocked(int32_t epoch) const {
  const bool evaluates = job_.train().eval_every_epoch() || job_.train().early_stopping_patience() > 0;
  return absl::StrCat(evaluates ? "eval-" : "epoch-", epoch);
}

absl::StatusOr<rpc::CheckpointManifest> SchedulerCore::WriteCheckpoint(int32_t epoch,
                                                                        const std::string& dir) {
  const absl::Time begin = absl::Now();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);  // what a crash may have left half written
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  const rpc::ClusterView view = View();
  const int partitions = job_.cluster().num_partitions();
  rpc::CheckpointManifest manifest;
  std::set<uint32_t> written;
  std::map<uint32_t, std::string> sha256;  // of each partition file
  for (const rpc::ServerInfo& server : view.servers()) {
    if (server.dead() || !Holds(view.partition_owner(), server.rank())) {
      continue;
    }
    auto stub = rpc::ParameterServer::NewStub(MakeChannel(server.address()));
    rpc::CheckpointRequest req;
    req.set_dir(dir);
    rpc::CheckpointResponse resp;
    grpc::Status s;
    const absl::Time give_up = absl::Now() + absl::Seconds(120);
    for (int attempt = 0;; ++attempt) {
      // Not wait_for_ready: a server that died meanwhile fails the checkpoint
      // at once (training goes on) instead of holding the workers.
      grpc::ClientContext ctx;
      ctx.set_deadline(DeadlineIn(give_up - absl::Now()));
      s = stub->Checkpoint(&ctx, req, &resp);
      if (s.ok() || s.error_code() != grpc::StatusCode::UNAVAILABLE || attempt >= 5 ||
          absl::Now() >= give_up) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(100) * (attempt + 1));  // retry backoff
    }
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrCat("server ", server.rank(), " at ", server.address(), ": ",
                                                 s.error_message()));
    }
    written.insert(resp.partitions().begin(), resp.partitions().end());
    for (int i = 0; i < resp.partitions_size() && i < resp.sha256_size(); ++i) {
      sha256[resp.partitions(i)] = resp.sha256(i);
    }
    manifest.set_bytes(manifest.bytes() + resp.bytes());
    manifest.set_next_clock(std::max(manifest.next_clock(), resp.next_clock()));
  }
  if (written.size() != static_cast<size_t>(partitions)) {
    return absl::DataLossError(absl::StrCat("only ", written.size(), " of ", partitions,
                                            " partitions were written (a primary changed meanwhile)"));
  }
  manifest.set_epochs_done(epoch + 1);
  manifest.set_num_partitions(partitions);
  for (int p = 0; p < partitions; ++p) {
    manifest.add_files(std::filesystem::path(PartitionStatePath(dir, p)).filename().string());
    manifest.add_sha256(sha256[p]);
  }
  *manifest.mutable_job() = job_;
  {
    MutexLock lock(&mu_);
    *manifest.mutable_progress() = ProgressLocked();
  }
  manifest.set_write_seconds(absl::ToDoubleSeconds(absl::Now() - begin));
  // Last: from now on the checkpoint is complete.
  if (absl::Status s = WriteCheckpointManifest(dir, manifest); !s.ok()) return s;
  return manifest;
}

void SchedulerCore::RestoreLostLocked(const std::vector<int>& lost, const std::string& who_why) {
  // Copies held per live server: standbys (holding nothing) come first.
  std::map<int, int> load;
  for (const auto& [id, node] : nodes_) {
    if (node.role == rpc::SERVER && !node.dead) load[node.rank] = 0;
  }
  for (const rpc::Placement& pl : view_.placement()) {
    if (load.count(pl.primary()) > 0) ++load[pl.primary()];
    for (int b : pl.backups()) {
      if (load.count(b) > 0) ++load[b];
    }
  }
  std::set<int> targets;
  for (int p : lost) {
    int best = -1;
    for (const auto& [rank, n] : load) {
      if (best < 0 || n < load[best]) best = rank;
    }
    rpc::Placement* pl = view_.mutable_placement(p);
    pl->set_primary(best);
    DropBackup(pl, best);
    NewTerm(pl);
    pl->set_restore_from(latest_checkpoint_);
    pl->set_restore_epoch(pl->epoch());
    pl->set_restore_rejoin(true);
    view_.set_partition_owner(p, best);
    ++load[best];
    targets.insert(best);
  }
  dirty_ = true;
  spdlog::error(
      "updates since epoch {} of partitions {} are lost: they had no replica left ({}); restored "
      "from the checkpoint {} on server{} {}",
      latest_checkpoint_epochs_, absl::StrJoin(lost, ", "), who_why, latest_checkpoint_,
      targets.size() == 1 ? "" : "s", absl::StrJoin(targets, ", "));
}

namespace {

int64_t UnixMicros(absl::Time t) { return t == absl::Time() ? 0 : absl::ToUnixMicros(t); }
absl::Time FromMicros(int64_t us) { return us == 0 ? absl::Time() : absl::FromUnixMicros(us); }

}  // namespace

rpc::ProgressRecord SchedulerCore::ProgressLocked() const {
  rpc::ProgressRecord p;
  eval_book_.SaveProgress(&p);
  p.set_train_examples(train_examples_);
  p.set_seconds(started_ == absl::Time() ? resumed_seconds_
                                         : absl::ToDoubleSeconds(clock_->Now() - started_));
  return p;
}

void SchedulerCore::LoadProgressLocked(const rpc::ProgressRecord& p) {
  eval_book_.LoadProgress(p);
  train_examples_ = p.train_examples();
}

void SchedulerCore::SaveStateLocked() {
  if ((!dirty_ && view_.version() == saved_view_version_) ||
      (options_.state_path.empty() && !options_.save_state)) {
    return;
  }
  dirty_ = false;
  saved_view_version_ = view_.version();
  rpc::SchedulerState s;
  *s.mutable_job() = job_;
  s.set_host(host_);
  s.set_port(port_);
  s.set_state(state_);
  s.set_failure(failure_);
  for (const auto& [id, node] : nodes_) {
    rpc::SchedulerState::Node* n = s.add_nodes();
    n->set_id(id);
    n->set_role(node.role);
    n->set_rank(node.rank);
    n->set_address(node.address);
    n->set_metrics_address(node.metrics_address);
    n->set_data_address(node.data_address);
    n->set_left(node.left);
    n->set_dead(node.dead);
    n->set_standby(node.standby);
    n->set_shard_epoch(node.shard_epoch);
    n->set_shard_begin(node.shard_begin);
    n->set_shard_end(node.shard_end);
    n->set_shard_request_id(node.shard_request_id);
    *n->mutable_shard_response() = node.shard_response;
    n->set_epoch(node.epoch);
    n->set_samples_done(node.samples_done);
    n->set_draining(node.draining);
  }
  s.set_next_node_id(next_node_id_);
  s.set_servers_registered(servers_registered_);
  s.set_workers_registered(workers_registered_);
  s.set_standbys_registered(standbys_registered_);
  // The view goes to its own file, once per version, before the state that
  // names it; the previous one is removed once the new state is written.
  const uint64_t previous_view_file = view_file_version_;
  if (options_.save_state) {
    *s.mutable_view() = view_;
  } else if (view_.version() != view_file_version_ || view_file_stale_) {
    std::string view_bytes;
    const absl::Status view_written =
        view_.SerializeToString(&view_bytes)
            ? WriteSealedFile(ViewFilePath(options_.state_path, view_.version()), view_bytes)
            : absl::InternalError("cannot serialize the cluster view");
    if (view_written.ok()) {
      view_file_version_ = view_.version();
      view_file_stale_ = false;
    } else {
      *s.mutable_view() = view_;  // in the state file, as before
    }
  }
  if (!s.has_view()) s.set_view_file_version(view_file_version_);
  for (const auto& [name, b] : barriers_) {
    rpc::SchedulerState::BarrierRecord* r = s.add_barriers();
    r->set_name(name);
    r->mutable_arrived()->Add(b.arrived.begin(), b.arrived.end());
    r->set_released(b.released);
    r->set_stop(b.stop);
  }
  shards_.Save(&s);
  eval_book_.Save(&s);
  *s.mutable_progress() = ProgressLocked();
  s.set_started_unix_us(UnixMicros(started_));
  s.set_finished_unix_us(UnixMicros(finished_));
  s.set_end_pending(end_pending_);
  s.set_latest_checkpoint(latest_checkpoint_);
  s.set_latest_checkpoint_epochs(latest_checkpoint_epochs_);
  s.set_checkpoint_pending(checkpoint_pending_);
  s.mutable_checkpoint_tried()->Add(checkpoint_tried_.begin(), checkpoint_tried_.end());
  s.set_start_epoch(start_epoch_);
  s.set_start_clock(start_clock_);
  rebalancer_.Save(&s);
  s.set_checkpoint_requested(checkpoint_requested_);
  std::string bytes;
  absl::Status written = options_.save_state ? options_.save_state(s)
                         : s.SerializeToString(&bytes)
                             ? WriteSealedFile(options_.state_path, bytes)
                             : absl::InternalError("cannot serialize the scheduler state");
  if (!options_.save_state && written.ok() && previous_view_file != 0 &&
      previous_view_file != view_file_version_) {
    std::remove(ViewFilePath(options_.state_path, previous_view_file).c_str());
  }
  if (!written.ok() && !state_write_failed_) {
    // Once: the job goes on, but a restart would not find this state.
    state_write_failed_ = true;
    spdlog::error("cannot write the scheduler's state: {}", std::string(written.message()));
  } else if (written.ok()) {
    state_write_failed_ = false;
  }
}

absl::Status SchedulerCore::Restore(const rpc::SchedulerState& s, absl::Time now) {
  MutexLock lock(&mu_);
  if (s.state() == rpc::DONE || s.state() == rpc::FAILED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the job in the state file is over (", s.state() == rpc::DONE ? "done" : "failed",
        s.failure().empty() ? "" : ": ", s.failure(), ")"));
  }
  state_ = s.state();
  failure_ = s.failure();
  host_ = s.host();
  port_ = s.port();
  nodes_.clear();
  for (const rpc::SchedulerState::Node& n : s.nodes()) {
    Node node;
    node.id = n.id();
    node.role = n.role();
    node.rank = n.rank();
    node.address = n.address();
    node.metrics_address = n.metrics_address();
    node.data_address = n.data_address();
    // Everyone gets a heartbeat timeout to show up (below).
    node.left = n.left();
    node.dead = n.dead();
    node.standby = n.standby();
    node.shard_epoch = n.shard_epoch();
    node.shard_begin = n.shard_begin();
    node.shard_end = n.shard_end();
    node.shard_request_id = n.shard_request_id();
    node.shard_response = n.shard_response();
    node.epoch = n.epoch();
    node.samples_done = n.samples_done();
    node.draining = n.draining();
    nodes_[node.id] = node;
    if (!node.left && !node.dead) liveness_.Heard(node.id, now);
  }
  liveness_.Restart(now);
  next_node_id_ = s.next_node_id();
  servers_registered_ = s.servers_registered();
  workers_registered_ = s.workers_registered();
  standbys_registered_ = s.standbys_registered();
  view_ = s.view();
  view_file_version_ = s.view_file_version();
  barriers_.clear();
  for (const rpc::SchedulerState::BarrierRecord& r : s.barriers()) {
    BarrierState& b = barriers_[r.name()];
    b.arrived.insert(r.arrived().begin(), r.arrived().end());
    b.released = r.released();
    b.stop = r.stop();
  }
  shards_.Load(s);
  eval_book_.Load(s);
  LoadProgressLocked(s.progress());
  started_ = FromMicros(s.started_unix_us());
  finished_ = FromMicros(s.finished_unix_us());
  // The job's end was under way (model, metrics.json): done again.
  end_pending_ = s.end_pending() || (finished_ != absl::Time() && state_ == rpc::RUNNING);
  latest_checkpoint_ = s.latest_checkpoint();
  latest_checkpoint_epochs_ = s.latest_checkpoint_epochs();
  checkpoint_pending_ = s.checkpoint_pending();
  checkpoint_tried_ = std::set<int32_t>(s.checkpoint_tried().begin(), s.checkpoint_tried().end());
  start_epoch_ = s.start_epoch();
  start_clock_ = s.start_clock();
  rebalancer_.Load(s, now);
  checkpoint_requested_ = s.checkpoint_requested();
  created_ = now;
  last_progress_ = now;
  recheck_ = true;
  dirty_ = true;
  // The map version moves on, so every member fetches the view again.
  view_.set_version(view_.version() + 1);
  spdlog::info(
      "restored the scheduler's state: {} members, map version {}, {} epochs evaluated{}",
      nodes_.size(), view_.version(), eval_book_.history().size(),
      latest_checkpoint_.empty() ? "" : absl::StrCat(", latest checkpoint ", latest_checkpoint_));
  SaveStateLocked();
  return absl::OkStatus();
}

}  // namespace ps
