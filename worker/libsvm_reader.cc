#include "worker/libsvm_reader.h"
