// CUDA building blocks of the fused face kernels, shared by face_crop.cu, face_paste.cu and
// face_modify.cu. The geometry comes from the host planner (face_plan.h), so the per-pixel math
// is the same inline code the CPU kernels run (face_common.h).
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "face_plan.h"

namespace anonface {
namespace face {
namespace cuda {

constexpr int kThreads = 256;

inline int64_t blocks_for(int64_t n, int64_t cap = 65535 * 16) {
  return std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, cap));
}

// out[k, c, ph, pw] = (sum_taps w * frame / scale - mean[c]) / stdv[c]; one thread per output
// pixel (all three channels, face_common.h's crop_pixel), grid-stride.
template <class scalar_t, class acc_t>
__global__ void crop_kernel(const scalar_t* __restrict__ f, FrameView v, const int32_t* __restrict__ frame,
                            const int32_t* __restrict__ ys, const int32_t* __restrict__ yl,
                            const int32_t* __restrict__ xs, const int32_t* __restrict__ xl,
                            const acc_t* __restrict__ wy, const acc_t* __restrict__ wx, int64_t Ly,
                            int64_t Lx, int64_t K, int64_t sh, int64_t sw, Norm<acc_t> nm,
                            acc_t* __restrict__ out) {
  const int64_t total = K * sh * sw, plane = sh * sw;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = t / plane, r = t % plane, ph = r / sw, pw = r % sw;
    const int64_t n = frame[k];
    const int64_t ny = n < 0 ? 0 : yl[k * sh + ph];
    crop_pixel<scalar_t, acc_t>(f, v, n, ys[k * sh + ph], ny, xs[k * sw + pw], xl[k * sw + pw],
                                wy + (k * sh + ph) * Ly, wx + (k * sw + pw) * Lx, nm,
                                out + k * 3 * plane + ph * sw + pw, plane);
  }
}

template <class scalar_t, class acc_t>
void launch_crop(const scalar_t* f, const FrameView& v, const CropPlan& p, int64_t sh, int64_t sw,
                 const Norm<acc_t>& nm, acc_t* out, cudaStream_t stream) {
  const int64_t K = p.frame.size(0);
  if (K == 0) return;
  crop_kernel<scalar_t, acc_t><<<blocks_for(K * sh * sw), kThreads, 0, stream>>>(
      f, v, p.frame.data_ptr<int32_t>(), p.ystart.data_ptr<int32_t>(), p.ylen.data_ptr<int32_t>(),
      p.xstart.data_ptr<int32_t>(), p.xlen.data_ptr<int32_t>(), p.wy.data_ptr<acc_t>(),
      p.wx.data_ptr<acc_t>(), p.Ly, p.Lx, K, sh, sw, nm, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// True when an earlier box of the same frame covers (i, j): that box's thread owns the pixel.
__device__ __forceinline__ bool owned_by_earlier(const PasteGeom* g, int64_t k, int32_t n, int64_t i,
                                                 int64_t j) {
  for (int64_t q = 0; q < k; ++q)
    if (covers(g[q], n, i, j)) return true;
  return false;
}

// Every pixel covered by some box is written by exactly one thread (the one of the first box
// that covers it), which blends all covering boxes in order: no races, deterministic.
// blockIdx.y walks the boxes; `out` already holds a copy of `in`.
template <class scalar_t, class acc_t>
__global__ void paste_kernel(const scalar_t* in, FrameView vin, scalar_t* out,  // may alias (in-place)
                             FrameView vout, const PasteGeom* __restrict__ g, int64_t K, Source<acc_t> src,
                             int32_t mask, float ib) {
  for (int64_t k = blockIdx.y; k < K; k += gridDim.y) {
    const PasteGeom gk = g[k];
    if (gk.n < 0) continue;
    const int64_t w = gk.j1 - gk.j0, count = int64_t(gk.i1 - gk.i0) * w;
    for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < count;
         t += int64_t(gridDim.x) * blockDim.x) {
      const int64_t i = gk.i0 + t / w, j = gk.j0 + t % w;
      if (owned_by_earlier(g, k, gk.n, i, j)) continue;
      const scalar_t* pin = in + vin.at(gk.n, i, j);
      acc_t orig[3], px[3];
      for (int c = 0; c < 3; ++c) px[c] = orig[c] = static_cast<acc_t>(pin[c * vin.sC]);
      for (int64_t q = k; q < K; ++q)
        if (covers(g[q], gk.n, i, j)) apply_box(g[q], q, i, j, src, mask, ib, orig, px);
      scalar_t* po = out + vout.at(gk.n, i, j);
      for (int c = 0; c < 3; ++c) po[c * vout.sC] = Store<scalar_t>::from(px[c]);
    }
  }
}

inline dim3 box_grid(const at::Tensor& geoms_host) {
  const int64_t K = geoms_host.numel() / static_cast<int64_t>(sizeof(PasteGeom));
  const PasteGeom* g = geoms_ptr(geoms_host);
  int64_t most = 1;
  for (int64_t k = 0; k < K; ++k)
    if (g[k].n >= 0) most = std::max<int64_t>(most, int64_t(g[k].i1 - g[k].i0) * (g[k].j1 - g[k].j0));
  return dim3(static_cast<unsigned>(blocks_for(most, 1024)),
              static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(K, 65535))));
}

template <class scalar_t, class acc_t>
void launch_paste(const scalar_t* in, const FrameView& vin, scalar_t* out, const FrameView& vout,
                  const at::Tensor& geoms_host, const at::Tensor& geoms_dev, const Source<acc_t>& src,
                  int32_t mask, float ib, cudaStream_t stream) {
  const int64_t K = geoms_host.numel() / static_cast<int64_t>(sizeof(PasteGeom));
  if (K == 0) return;
  paste_kernel<scalar_t, acc_t><<<box_grid(geoms_host), kThreads, 0, stream>>>(
      in, vin, out, vout, geoms_ptr(geoms_dev), K, src, mask, ib);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

inline at::Tensor copy_frames(const at::Tensor& frames) {
  at::Tensor out = at::empty(frames.sizes(), frames.options());
  out.copy_(frames);
  return out;
}

}  // namespace cuda
}  // namespace face
}  // namespace anonface
