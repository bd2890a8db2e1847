// face_modify on CUDA: crop + hand-crafted modification + paste fused in one op. Each box's
// content comes from the input frames: pixelate (per-cell means, one block per cell, double
// sums: exact for uint8), blur (Gaussian on a G x G roi_align grid of the box, replicate border,
// sampled back bilinearly), solid, or noise (counter-based: the same numbers as on the CPU);
// then every box is blended with the paste mask, in order.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <cmath>

#include "cuda/face_cuda.cuh"

namespace anonface {
namespace face {
namespace {

// One block per (cell, box): blockIdx.x = cell (cy * cells + cx), blockIdx.y walks the boxes.
template <class scalar_t, class acc_t>
__global__ void cell_means_kernel(const scalar_t* __restrict__ f, FrameView v,
                                  const PasteGeom* __restrict__ g, const int32_t* __restrict__ bounds,
                                  int64_t K, int32_t cells, acc_t* __restrict__ out) {
  __shared__ double sums[3][cuda::kThreads];
  const int64_t nb = cells + 1, plane = int64_t(cells) * cells;
  const int64_t cell = blockIdx.x, cy = cell / cells, cx = cell % cells;
  for (int64_t k = blockIdx.y; k < K; k += gridDim.y) {
    const int64_t n = g[k].n;
    if (n < 0) continue;  // uniform across the block
    const int32_t* rb = bounds + (k * 2) * nb;
    const int32_t* cb = bounds + (k * 2 + 1) * nb;
    const int64_t r0 = rb[cy], r1 = rb[cy + 1], c0 = cb[cx], c1 = cb[cx + 1];
    const int64_t w = c1 - c0, count = (r1 - r0) * w;
    double s0 = 0, s1 = 0, s2 = 0;
    for (int64_t t = threadIdx.x; t < count; t += blockDim.x) {
      const scalar_t* p = f + v.at(n, r0 + t / w, c0 + t % w);
      s0 += static_cast<double>(p[0]);
      s1 += static_cast<double>(p[v.sC]);
      s2 += static_cast<double>(p[2 * v.sC]);
    }
    sums[0][threadIdx.x] = s0;
    sums[1][threadIdx.x] = s1;
    sums[2][threadIdx.x] = s2;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride)
        for (int c = 0; c < 3; ++c) sums[c][threadIdx.x] += sums[c][threadIdx.x + stride];
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      const double cnt = count > 0 ? static_cast<double>(count) : 1.0;
      for (int c = 0; c < 3; ++c)
        out[(k * 3 + c) * plane + cy * cells + cx] = static_cast<acc_t>(sums[c][0] / cnt);
    }
    __syncthreads();
  }
}

// One pass of the separable Gaussian over [K * 3, G, G], replicate border; `vertical` picks the axis.
template <class acc_t>
__global__ void blur_pass_kernel(const acc_t* __restrict__ in, acc_t* __restrict__ out, int64_t planes,
                                 int64_t G, const acc_t* __restrict__ taps, int64_t radius, bool vertical) {
  const int64_t total = planes * G * G;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pl = t / (G * G), r = t % (G * G), y = r / G, x = r % G;
    const acc_t* p = in + pl * G * G;
    acc_t a = 0;
    for (int64_t d = -radius; d <= radius; ++d) {
      if (vertical) {
        const int64_t yy = min(max(y + d, int64_t(0)), G - 1);
        a += taps[d + radius] * p[yy * G + x];
      } else {
        const int64_t xx = min(max(x + d, int64_t(0)), G - 1);
        a += taps[d + radius] * p[y * G + xx];
      }
    }
    out[t] = a;
  }
}

template <class scalar_t, class acc_t>
void modify_impl(const at::Tensor& frames, at::Tensor& out, bool cl, const at::Tensor& rh, int32_t method,
                 double strength, int32_t mk, float ib, uint64_t seed) {
  const auto bhw = frame_bhw(frames, cl);
  const int64_t K = rh.size(0);
  const FrameView vin = frame_view(frames, cl), vout = frame_view(out, cl);
  const scalar_t* f = frames.data_ptr<scalar_t>();
  const double unit = std::is_same<scalar_t, uint8_t>::value ? 1.0 : 1.0 / 255.0;
  const auto acc = acc_type(frames.scalar_type());
  const auto dev = frames.device();
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  Source<acc_t> src{};
  at::Tensor data, gh;
  if (method == kCells) {
    const int32_t cells = static_cast<int32_t>(std::min(std::max(std::nearbyint(strength), 1.0), 4096.0));
    gh = plan_paste(rh, bhw[1], bhw[2], cells, cells);
    const at::Tensor bounds = plan_cells(gh, cells).to(dev);
    const at::Tensor gd = gh.to(dev);
    data = at::zeros({K, 3, cells, cells}, frames.options().dtype(acc));
    const dim3 grid(static_cast<unsigned>(int64_t(cells) * cells),
                    static_cast<unsigned>(std::min<int64_t>(K, 65535)));
    cell_means_kernel<scalar_t, acc_t><<<grid, cuda::kThreads, 0, stream>>>(
        f, vin, geoms_ptr(gd), bounds.data_ptr<int32_t>(), K, cells, data.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    src.kind = kCells;
    src.data = data.data_ptr<acc_t>();
    cuda::launch_paste<scalar_t, acc_t>(f, vin, out.data_ptr<scalar_t>(), vout, gh, gd, src, mk, ib, stream);
    return;
  }
  if (method == kFace) {  // blur
    const int64_t G = blur_grid(strength);
    gh = plan_paste(rh, bhw[1], bhw[2], G, G);
    const CropPlan plan = plan_crop(rh, G, G, bhw[1], bhw[2], acc, /*replicate=*/true).to(dev);
    data = at::empty({K, 3, G, G}, frames.options().dtype(acc));
    at::Tensor tmp = at::empty_like(data);
    cuda::launch_crop<scalar_t, acc_t>(f, vin, plan, G, G, Norm<acc_t>{{0, 0, 0}, {1, 1, 1}, 1},
                                       data.data_ptr<acc_t>(), stream);
    const at::Tensor taps = gaussian_taps(strength * static_cast<double>(G), acc).to(dev);
    const int64_t radius = (taps.numel() - 1) / 2, planes = K * 3;
    blur_pass_kernel<acc_t><<<cuda::blocks_for(planes * G * G), cuda::kThreads, 0, stream>>>(
        data.data_ptr<acc_t>(), tmp.data_ptr<acc_t>(), planes, G, taps.data_ptr<acc_t>(), radius, true);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    blur_pass_kernel<acc_t><<<cuda::blocks_for(planes * G * G), cuda::kThreads, 0, stream>>>(
        tmp.data_ptr<acc_t>(), data.data_ptr<acc_t>(), planes, G, taps.data_ptr<acc_t>(), radius, false);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    src.kind = kFace;
    src.data = data.data_ptr<acc_t>();
    for (int c = 0; c < 3; ++c) src.mean[c] = 0, src.stdv[c] = 1;
    src.scale = 1;
  } else {
    gh = plan_paste(rh, bhw[1], bhw[2], 1, 1);
    src.kind = method;
    src.solid = static_cast<acc_t>(strength * unit);
    src.sigma = static_cast<acc_t>(strength * unit);
    src.inv_sd = static_cast<acc_t>(noise_inv_sd());
    src.seed = seed;
  }
  const at::Tensor gd = gh.to(dev);
  cuda::launch_paste<scalar_t, acc_t>(f, vin, out.data_ptr<scalar_t>(), vout, gh, gd, src, mk, ib, stream);
}

at::Tensor modify_cuda(const at::Tensor& frames, const at::Tensor& rois, c10::string_view method,
                       double strength, c10::string_view mask, double feather, int64_t seed,
                       bool channels_last, bool inplace) {
  c10::cuda::CUDAGuard guard(frames.device());
  return modify_frames(frames, rois, method, strength, mask, feather, channels_last, inplace,
                       cuda::copy_frames, [&](auto s, auto a, const ModifyCall& c, at::Tensor& out) {
                         modify_impl<decltype(s), decltype(a)>(frames, out, channels_last, c.rois, c.method,
                                                               strength, c.mask, c.inv_band,
                                                               static_cast<uint64_t>(seed));
                       });
}

at::Tensor face_modify_cuda(const at::Tensor& frames, const at::Tensor& rois, c10::string_view method,
                            double strength, c10::string_view mask, double feather, int64_t seed,
                            bool channels_last) {
  return modify_cuda(frames, rois, method, strength, mask, feather, seed, channels_last, false);
}

void face_modify_inplace_cuda(const at::Tensor& frames, const at::Tensor& rois, c10::string_view method,
                              double strength, c10::string_view mask, double feather, int64_t seed,
                              bool channels_last) {
  modify_cuda(frames, rois, method, strength, mask, feather, seed, channels_last, true);
}

}  // namespace
}  // namespace face
}  // namespace anonface

TORCH_LIBRARY_IMPL(anonface, CUDA, m) {
  m.impl("face_modify", &anonface::face::face_modify_cuda);
  m.impl("face_modify_", &anonface::face::face_modify_inplace_cuda);
}
