#include "common/refusal_metrics.h"

namespace ps {

std::unique_ptr<Monitoring::Collection> ExportRefusals(const Authorizer* auth,
                                                       const std::string& service,
                                                       Monitoring* monitoring) {
  return monitoring->AddCollector([auth, service] {
    prometheus::MetricFamily refused = Family(
        "ps_requests_refused_total",
        "Calls refused: no or a wrong credential, a role or rank that may not make the call, "
        "a request over security.limits",
        prometheus::MetricType::Counter);
    for (const auto& [what, count] : auth->Refusals()) {
      AddSample(&refused, static_cast<double>(count),
                {{"service", service}, {"method", what.first}, {"code", what.second}});
    }
    return std::vector<prometheus::MetricFamily>{std::move(refused)};
  });
}

}  // namespace ps
