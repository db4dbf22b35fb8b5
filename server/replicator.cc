#include "server/replicator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/rpc.h"
#include "proto/ps.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace ps {
namespace {

constexpr size_t kMaxBatchBytes = 64 << 20;

size_t OpBytes(const rpc::ReplicaOp& op) {
  size_t n = 64;
  for (const rpc::TableSlice& s : op.push().slices()) {
    n += s.keys_size() * sizeof(uint64_t) + s.values_size() * sizeof(float);
  }
  return n;
}

size_t StateBytes(const rpc::PartitionState& s) {
  size_t n = 64;
  for (const auto& t : s.tables()) n += t.keys_size() * 12 + t.rows_size() * sizeof(float);
  for (const auto& b : s.pending()) n += b.keys_size() * 12 + b.grads_size() * sizeof(float);
  return n;
}

}  // namespace

Replicator::Replicator(int self_rank, int num_partitions, absl::Duration rpc_timeout,
                       Callbacks callbacks)
    : self_rank_(self_rank), rpc_timeout_(rpc_timeout), callbacks_(std::move(callbacks)) {
  MutexLock lock(&mu_);
  primary_.assign(num_partitions, false);
  acked_.resize(num_partitions);
  installing_.resize(num_partitions);
}

Replicator::~Replicator() { Shutdown(); }

void Replicator::SetAddress(int rank, const std::string& address) {
  MutexLock lock(&mu_);
  addresses_[rank] = address;
}

Replicator::Channel* Replicator::ChannelLocked(int rank) {
  auto it = channels_.find(rank);
  if (it != channels_.end()) return it->second.get();
  auto channel = std::make_unique<Channel>();
  channel->rank = rank;
  channel->address = addresses_[rank];
  Channel* raw = channel.get();
  channels_[rank] = std::move(channel);
  raw->thread = std::thread([this, raw] { Run(raw); });
  return raw;
}

void Replicator::DropQueuedLocked(int partition, int backup) {
  auto drop = [&](Channel* c) {
    c->queue.erase(std::remove_if(c->queue.begin(), c->queue.end(),
                                  [&](const Item& i) { return i.partition == partition; }),
                   c->queue.end());
  };
  if (backup >= 0) {
    auto it = channels_.find(backup);
    if (it != channels_.end()) drop(it->second.get());
    return;
  }
  for (auto& [rank, c] : channels_) drop(c.get());
}

void Replicator::SetPrimary(int partition, bool primary) {
  std::vector<Done> ready, failed;
  {
    MutexLock lock(&mu_);
    if (primary_[partition] == primary) return;
    primary_[partition] = primary;
    if (!primary) {
      acked_[partition].clear();
      installing_[partition].clear();
      DropQueuedLocked(partition, -1);
      CollectLocked(&ready, &failed);
    }
  }
  for (Done& d : ready) d(absl::OkStatus());
  for (Done& d : failed) {
    d(absl::FailedPreconditionError(
        absl::StrCat("server ", self_rank_, " is no longer primary of partition ", partition)));
  }
}

void Replicator::RemoveBackup(int partition, int backup) {
  std::vector<Done> ready, failed;
  {
    MutexLock lock(&mu_);
    acked_[partition].erase(backup);
    installing_[partition].erase(backup);
    DropQueuedLocked(partition, backup);
    CollectLocked(&ready, &failed);
  }
  for (Done& d : ready) d(absl::OkStatus());
  for (Done& d : failed) d(absl::FailedPreconditionError("no longer primary"));
}

void Replicator::AddBackup(int partition, int backup, const rpc::PartitionState& state) {
  MutexLock lock(&mu_);
  if (stopping_ || !primary_[partition]) return;
  acked_[partition][backup] = 0;
  installing_[partition][backup] = state.lsn();
  DropQueuedLocked(partition, backup);
  Channel* c = ChannelLocked(backup);
  Item item{partition, state.lsn(), StateBytes(state), true, state, {}};
  c->queue.push_back(std::move(item));
  ++counters_.snapshots_sent;
  c->cv.Signal();
}

std::vector<int> Replicator::Backups(int partition) const {
  MutexLock lock(&mu_);
  std::vector<int> out;
  for (const auto& [b, lsn] : acked_[partition]) out.push_back(b);
  return out;
}

bool Replicator::Replicating(int partition) const {
  MutexLock lock(&mu_);
  return primary_[partition] && !acked_[partition].empty();
}

void Replicator::Enqueue(int partition, rpc::ReplicaOp op) {
  MutexLock lock(&mu_);
  if (stopping_ || !primary_[partition]) return;
  const size_t bytes = OpBytes(op);
  size_t left = acked_[partition].size();
  for (const auto& [b, lsn] : acked_[partition]) {
    Channel* c = ChannelLocked(b);
    Item item{partition, op.lsn(), bytes, false, {}, {}};
    if (--left == 0) {
      item.op = std::move(op);
    } else {
      item.op = op;
    }
    c->queue.push_back(std::move(item));
    ++counters_.ops_sent;
    c->cv.Signal();
    if (left == 0) break;
  }
}

bool Replicator::SatisfiedLocked(const Waiter& w) const {
  for (const auto& [p, lsn] : w.needs) {
    for (const auto& [b, acked] : acked_[p]) {
      if (acked < lsn) return false;
    }
  }
  return true;
}

void Replicator::CollectLocked(std::vector<Done>* ready, std::vector<Done>* failed) {
  auto keep = waiters_.begin();
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    bool lost = false;
    for (const auto& [p, lsn] : it->needs) lost |= !primary_[p];
    if (lost) {
      failed->push_back(std::move(it->done));
    } else if (SatisfiedLocked(*it)) {
      ready->push_back(std::move(it->done));
    } else {
      if (keep != it) *keep = std::move(*it);
      ++keep;
    }
  }
  waiters_.erase(keep, waiters_.end());
}

void Replicator::WhenReplicated(std::vector<std::pair<int, uint64_t>> needs, absl::Time deadline,
                                Done done) {
  absl::Status status;
  {
    MutexLock lock(&mu_);
    Waiter w{std::move(needs), deadline, nullptr};
    if (stopping_) {
      status = absl::UnavailableError("server is shutting down");
    } else {
      int lost = -1;
      for (const auto& [p, lsn] : w.needs) {
        if (!primary_[p]) lost = p;
      }
      if (lost >= 0) {
        status = absl::FailedPreconditionError(
            absl::StrCat("server ", self_rank_, " is no longer primary of partition ", lost));
      } else if (!SatisfiedLocked(w)) {
        w.done = std::move(done);
        waiters_.push_back(std::move(w));
        return;
      }
    }
  }
  done(status);
}

void Replicator::Expire(absl::Time now) {
  std::vector<Done> expired;
  {
    MutexLock lock(&mu_);
    auto keep = waiters_.begin();
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
      if (it->deadline <= now) {
        expired.push_back(std::move(it->done));
      } else {
        if (keep != it) *keep = std::move(*it);
        ++keep;
      }
    }
    waiters_.erase(keep, waiters_.end());
  }
  for (Done& d : expired) {
    d(absl::DeadlineExceededError("the partition's backups did not acknowledge in time"));
  }
}

void Replicator::Shutdown() {
  std::vector<Done> waiting;
  std::vector<std::thread> threads;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    for (Waiter& w : waiters_) waiting.push_back(std::move(w.done));
    waiters_.clear();
    for (auto& [rank, c] : channels_) {
      c->cv.SignalAll();
      if (c->thread.joinable()) threads.push_back(std::move(c->thread));
    }
  }
  for (std::thread& t : threads) t.join();
  for (Done& d : waiting) d(absl::UnavailableError("server is shutting down"));
}

Replicator::Counters Replicator::counters() const {
  MutexLock lock(&mu_);
  return counters_;
}

uint64_t Replicator::Pending() const {
  MutexLock lock(&mu_);
  uint64_t n = 0;
  for (const auto& [rank, ch] : channels_) n += ch->queue.size() + ch->in_flight;
  return n;
}

void Replicator::Run(Channel* ch) {
  std::string address;
  {
    MutexLock lock(&mu_);
    address = ch->address;
  }
  auto stub = rpc::ParameterServer::NewStub(MakeChannel(address));
  int failures = 0;
  while (true) {
    rpc::ReplicateRequest req;
    req.set_from_rank(self_rank_);
    {
      MutexLock lock(&mu_);
      while (!stopping_ && ch->queue.empty()) ch->cv.Wait(&mu_);
      if (stopping_) return;
      size_t bytes = 0;
      while (!ch->queue.empty() &&
             (bytes == 0 || bytes + ch->queue.front().bytes <= kMaxBatchBytes)) {
        Item& item = ch->queue.front();
        bytes += item.bytes;
        if (item.install) {
          *req.add_installs() = std::move(item.state);
        } else {
          *req.add_ops() = std::move(item.op);
        }
        ch->queue.pop_front();
      }
      ch->in_flight = req.installs_size() + req.ops_size();
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(rpc_timeout_));
    rpc::ReplicateResponse resp;
    const grpc::Status status = stub->Replicate(&ctx, req, &resp);
    std::vector<Done> ready, failed;
    std::vector<int> fenced, resync;
    {
      MutexLock lock(&mu_);
      ch->in_flight = 0;
      ++counters_.rpcs;
      if (status.ok()) {
        failures = 0;
        std::set<uint32_t> refused(resp.fenced().begin(), resp.fenced().end());
        refused.insert(resp.resync().begin(), resp.resync().end());
        for (const rpc::PartitionState& s : req.installs()) {
          const int p = s.partition();
          if (refused.count(p) > 0) continue;
          auto inst = installing_[p].find(ch->rank);
          if (inst == installing_[p].end() || inst->second != s.lsn()) continue;
          installing_[p].erase(inst);
          auto acked = acked_[p].find(ch->rank);
          if (acked != acked_[p].end()) acked->second = std::max(acked->second, s.lsn());
        }
        for (const rpc::ReplicaOp& op : req.ops()) {
          const int p = op.partition();
          if (refused.count(p) > 0 || installing_[p].count(ch->rank) > 0) continue;
          auto acked = acked_[p].find(ch->rank);
          if (acked != acked_[p].end()) acked->second = std::max(acked->second, op.lsn());
        }
        fenced.assign(resp.fenced().begin(), resp.fenced().end());
        resync.assign(resp.resync().begin(), resp.resync().end());
        CollectLocked(&ready, &failed);
      } else {
        ++failures;
        ++counters_.rpc_failures;
        // Back at the front, in order (snapshots before the ops that follow
        // them), for partitions this backup still serves.
        for (int i = req.ops_size() - 1; i >= 0; --i) {
          const int p = req.ops(i).partition();
          if (acked_[p].count(ch->rank) == 0) continue;
          Item item{p, req.ops(i).lsn(), OpBytes(req.ops(i)), false, {}, {}};
          item.op = std::move(*req.mutable_ops(i));
          ch->queue.push_front(std::move(item));
        }
        for (int i = req.installs_size() - 1; i >= 0; --i) {
          const int p = req.installs(i).partition();
          auto inst = installing_[p].find(ch->rank);
          if (inst == installing_[p].end() || inst->second != req.installs(i).lsn()) continue;
          Item item{p, req.installs(i).lsn(), StateBytes(req.installs(i)), true, {}, {}};
          item.state = std::move(*req.mutable_installs(i));
          ch->queue.push_front(std::move(item));
        }
      }
    }
    if (!status.ok() && (failures == 1 || failures % 20 == 0)) {
      spdlog::warn("replication to server {} at {} failed ({} in a row): {}", ch->rank, address,
                   failures, status.error_message());
    }
    if (!status.ok() && (failures == 1 || failures % 10 == 0) && callbacks_.unreachable &&
        (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)) {
      callbacks_.unreachable(ch->rank, status.error_message());
    }
    for (int p : fenced) {
      spdlog::warn("server {} refused partition {}'s updates: a newer primary exists", ch->rank, p);
      if (callbacks_.fenced) callbacks_.fenced(p);
    }
    for (int p : resync) {
      if (callbacks_.resync) callbacks_.resync(p, ch->rank);
    }
    for (Done& d : ready) d(absl::OkStatus());
    for (Done& d : failed) d(absl::FailedPreconditionError("no longer primary of a partition"));
    if (!status.ok()) {
      // Backoff, cut short only by shutdown.
      const absl::Time until =
          absl::Now() + std::min(absl::Milliseconds(20) * (1 << std::min(failures, 6)),
                                 absl::Milliseconds(500));
      MutexLock lock(&mu_);
      while (!stopping_ && absl::Now() < until) ch->cv.WaitWithTimeout(&mu_, until - absl::Now());
      if (stopping_) return;
    }
  }
}

}  // namespace ps
