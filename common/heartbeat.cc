#include "common/heartbeat.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/signals.h"

namespace ps {

Heartbeat::Heartbeat(SchedulerClient* client, uint32_t node_id, absl::Duration interval,
                     absl::Duration lost_after, Fill fill, OnEnd on_end)
    : client_(client), node_id_(node_id), interval_(interval), lost_after_(lost_after),
      fill_(std::move(fill)), on_end_(std::move(on_end)), thread_([this] { Loop(); }) {}

Heartbeat::~Heartbeat() {
  stop_.Notify();
  thread_.join();
}

void Heartbeat::OnNewView(std::function<void(uint64_t version)> on_view) {
  MutexLock lock(&mu_);
  on_view_ = std::move(on_view);
}

void Heartbeat::Loop() {
  absl::Time last_ok = absl::Now();
  uint64_t last_view = 0;
  while (!stop_.WaitForNotificationWithTimeout(interval_)) {
    if (StopRequested()) {
      on_end_(End::kSignal, "stopped by a signal");
      return;
    }
    rpc::HeartbeatRequest hb;
    hb.set_node_id(node_id_);
    if (fill_) fill_(&hb);
    // A short deadline: a scheduler whose host is lost drops packets, and
    // the next heartbeat should try a standby scheduler soon.
    auto resp =
        client_->Heartbeat(hb, std::clamp(2 * interval_, absl::Seconds(1), absl::Seconds(10)));
    if (resp.ok()) {
      last_ok = absl::Now();
      if (resp->state() == rpc::FAILED) {
        on_end_(End::kJobFailed, absl::StrCat("the job failed: ", resp->message()));
        return;
      }
      if (resp->view_version() > last_view) {
        last_view = resp->view_version();
        std::function<void(uint64_t)> on_view;
        {
          MutexLock lock(&mu_);
          on_view = on_view_;
        }
        if (on_view) on_view(last_view);
      }
    } else if (absl::Now() - last_ok > lost_after_) {
      on_end_(End::kSchedulerLost,
              absl::StrCat("lost the scheduler at ", client_->address(), " (no answer for ",
                           absl::FormatDuration(absl::Now() - last_ok),
                           "): ", resp.status().message()));
      return;
    }
  }
}

}  // namespace ps
