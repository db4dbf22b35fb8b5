// Placeholder: being written.
#ifndef PS_COMMON_CONFIG_H_
#define PS_COMMON_CONFIG_H_
#endif
