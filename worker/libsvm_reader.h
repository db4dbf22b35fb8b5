// Placeholder: being written.
#ifndef PS_WORKER_LIBSVM_READER_H_
#define PS_WORKER_LIBSVM_READER_H_
#endif
