// For the multi-process tests: this test process's calls as the job's admin.
#ifndef PS_TESTS_AUTH_UTIL_H_
#define PS_TESTS_AUTH_UTIL_H_

#include <string>

#include "common/auth.h"
#include "gtest/gtest.h"

namespace ps::testing {

// Later channels of this process carry an admin ticket made from the job
// secret in `job_token` (<output_dir>/auth/job.token of a ps_launch job).
inline void UseAdminCredentials(const std::string& job_token) {
  auto loaded = LoadProcessCredentials(job_token, rpc::PRINCIPAL_ADMIN);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
}

}  // namespace ps::testing

#endif  // PS_TESTS_AUTH_UTIL_H_
