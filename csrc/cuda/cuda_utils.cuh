// Small helpers shared by the CUDA kernels. Only light headers: the CPU wheel's CUDA-less headers
// must still compile these files in CI (see BUILD_NOTES: no ATen/cuda/CUDAContext.h).
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>

namespace anonface::cuda {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned int>(std::min<int64_t>(std::max<int64_t>(b, 1), 65535 * 64));
}

// Grid-stride loop over [0, n).
#define ANONFACE_CUDA_LOOP(i, n)                                                         \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

}  // namespace anonface::cuda
