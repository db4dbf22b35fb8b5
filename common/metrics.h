// Placeholder: being written.
#ifndef PS_COMMON_METRICS_H_
#define PS_COMMON_METRICS_H_
#endif
