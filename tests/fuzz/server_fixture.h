// What the server-side fuzz targets share: a job in the mode the input's
// byte picks, with 4 partitions, and a view making server 0 primary of all.
#ifndef PS_TESTS_FUZZ_SERVER_FIXTURE_H_
#define PS_TESTS_FUZZ_SERVER_FIXTURE_H_

#include <cstdint>
#include <string>

#include "proto/job_config.pb.h"
#include "proto/scheduler.pb.h"

namespace ps::fuzz {

inline config::JobConfig Job(uint8_t mode, const std::string& output_dir) {
  config::JobConfig job;
  job.mutable_job()->set_mode(mode % 3 == 0   ? config::BSP
                              : mode % 3 == 1 ? config::SSP
                                              : config::ASP);
  job.mutable_job()->set_output_dir(output_dir);
  job.mutable_cluster()->set_num_partitions(4);
  job.mutable_model()->set_num_features(64);
  return job;
}

inline rpc::ClusterView View() {
  rpc::ClusterView view;
  view.set_version(1);
  for (int p = 0; p < 4; ++p) {
    view.add_partition_owner(0);
    auto* pl = view.add_placement();
    pl->set_primary(0);
    pl->set_epoch(1);
  }
  for (int w = 0; w < 2; ++w) view.add_live_workers(w);
  auto* s = view.add_servers();
  s->set_rank(0);
  s->set_address("127.0.0.1:1");
  return view;
}

}  // namespace ps::fuzz

#endif  // PS_TESTS_FUZZ_SERVER_FIXTURE_H_
