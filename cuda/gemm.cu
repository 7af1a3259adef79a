// gemm kernels: being written.
#include "common.cuh"
