// dwconv kernels: being written.
#include "common.cuh"
