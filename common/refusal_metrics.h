// ps_requests_refused_total{service, method, code}: the calls an Authorizer
// refused (no or a wrong credential, a role or rank that may not make the
// call, a limit), read at every scrape while the result lives.
#ifndef PS_COMMON_REFUSAL_METRICS_H_
#define PS_COMMON_REFUSAL_METRICS_H_

#include <memory>
#include <string>

#include "common/auth.h"
#include "common/monitoring.h"

namespace ps {

// `auth` must outlive the result.
std::unique_ptr<Monitoring::Collection> ExportRefusals(const Authorizer* auth,
                                                       const std::string& service,
                                                       Monitoring* monitoring);

}  // namespace ps

#endif  // PS_COMMON_REFUSAL_METRICS_H_
