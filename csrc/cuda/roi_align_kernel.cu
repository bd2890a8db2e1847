// roi_align on CUDA: forward and backward for float, double, half and bfloat16 (accumulating in
// float for the 16-bit types). Contract: csrc/roi_common.h (torchvision.ops.roi_align semantics).
// Forward: one thread per output element. Backward: one thread per output gradient, scattering
// with atomics into a float (or double) buffer that is cast to the input dtype at the end.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <ATen/cuda/Atomic.cuh>

#include "cuda/cuda_utils.cuh"
#include "roi_checks.h"
#include "roi_common.h"

namespace anonface {
namespace {

using cuda::blocks_for;
using cuda::kThreads;

// Calls f(idx[4], w[4]) with the bilinear taps of every in-map sample of bin (ph, pw).
template <typename acc_t, typename F>
__device__ __forceinline__ void for_each_sample(const AlignRoi<acc_t>& a, int ph, int pw, int64_t H,
                                                int64_t W, F&& f) {
  for (int iy = 0; iy < a.grid_h; ++iy) {
    const acc_t y = a.start_h + ph * a.bin_h +
                    (static_cast<acc_t>(iy) + acc_t(0.5)) * a.bin_h / static_cast<acc_t>(a.grid_h);
    for (int ix = 0; ix < a.grid_w; ++ix) {
      const acc_t x = a.start_w + pw * a.bin_w +
                      (static_cast<acc_t>(ix) + acc_t(0.5)) * a.bin_w / static_cast<acc_t>(a.grid_w);
      int64_t idx[4];
      acc_t w[4];
      if (bilinear_taps(y, x, H, W, idx, w)) f(idx, w);
    }
  }
}

template <typename scalar_t, typename acc_t>
__global__ void roi_align_forward_kernel(int64_t total, const scalar_t* __restrict__ input,
                                         const acc_t* __restrict__ rois, int64_t N, int64_t C, int64_t H,
                                         int64_t W, int PH, int PW, acc_t scale, int sampling_ratio,
                                         bool aligned, scalar_t* __restrict__ output) {
  ANONFACE_CUDA_LOOP(i, total) {
    const int pw = static_cast<int>(i % PW);
    const int ph = static_cast<int>((i / PW) % PH);
    const int64_t c = (i / (PW * PH)) % C;
    const int64_t k = i / (PW * PH * C);
    const AlignRoi<acc_t> a = make_align_roi<acc_t>(rois + k * 5, N, scale, PH, PW, sampling_ratio, aligned);
    if (a.batch < 0) {
      output[i] = scalar_t(0);
      continue;
    }
    const scalar_t* plane = input + (a.batch * C + c) * H * W;
    acc_t sum = 0;
    for_each_sample(a, ph, pw, H, W, [&](const int64_t* idx, const acc_t* w) {
      sum += w[0] * static_cast<acc_t>(plane[idx[0]]) + w[1] * static_cast<acc_t>(plane[idx[1]]) +
             w[2] * static_cast<acc_t>(plane[idx[2]]) + w[3] * static_cast<acc_t>(plane[idx[3]]);
    });
    output[i] = static_cast<scalar_t>(sum / a.count);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void roi_align_backward_kernel(int64_t total, const scalar_t* __restrict__ grad,
                                          const acc_t* __restrict__ rois, int64_t N, int64_t C, int64_t H,
                                          int64_t W, int PH, int PW, acc_t scale, int sampling_ratio,
                                          bool aligned, acc_t* __restrict__ grad_input) {
  ANONFACE_CUDA_LOOP(i, total) {
    const int pw = static_cast<int>(i % PW);
    const int ph = static_cast<int>((i / PW) % PH);
    const int64_t c = (i / (PW * PH)) % C;
    const int64_t k = i / (PW * PH * C);
    const AlignRoi<acc_t> a = make_align_roi<acc_t>(rois + k * 5, N, scale, PH, PW, sampling_ratio, aligned);
    if (a.batch < 0) continue;
    acc_t* plane = grad_input + (a.batch * C + c) * H * W;
    const acc_t g = static_cast<acc_t>(grad[i]) / a.count;
    for_each_sample(a, ph, pw, H, W, [&](const int64_t* idx, const acc_t* w) {
      gpuAtomicAdd(plane + idx[0], w[0] * g);
      gpuAtomicAdd(plane + idx[1], w[1] * g);
      gpuAtomicAdd(plane + idx[2], w[2] * g);
      gpuAtomicAdd(plane + idx[3], w[3] * g);
    });
  }
}

at::Tensor roi_align_forward_cuda(const at::Tensor& input_, const at::Tensor& rois_, double spatial_scale,
                                  int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  check_roi_args(input_, rois_, pooled_h, pooled_w, "roi_align");
  check_sampling_ratio(sampling_ratio, "roi_align");
  c10::cuda::CUDAGuard guard(input_.device());
  at::Tensor input = input_.contiguous();
  at::Tensor rois = rois_for(input, rois_);
  const int64_t K = rois.size(0), N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  at::Tensor output = at::zeros({K, C, pooled_h, pooled_w}, input.options());
  const int64_t total = output.numel();
  if (total == 0 || H == 0 || W == 0) return output;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "roi_align_forward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        roi_align_forward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
            total, input.const_data_ptr<scalar_t>(), rois.const_data_ptr<acc_t>(), N, C, H, W,
            static_cast<int>(pooled_h), static_cast<int>(pooled_w), static_cast<acc_t>(spatial_scale),
            static_cast<int>(sampling_ratio), aligned, output.mutable_data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return output;
}

at::Tensor roi_align_backward_cuda(const at::Tensor& grad_, const at::Tensor& rois_, double spatial_scale,
                                   int64_t pooled_h, int64_t pooled_w, int64_t batch_size, int64_t channels,
                                   int64_t height, int64_t width, int64_t sampling_ratio, bool aligned) {
  check_roi_backward_args(grad_, rois_, batch_size, channels, pooled_h, pooled_w, "_roi_align_backward");
  check_sampling_ratio(sampling_ratio, "_roi_align_backward");
  c10::cuda::CUDAGuard guard(grad_.device());
  at::Tensor grad = grad_.contiguous();
  at::Tensor rois = rois_for(grad, rois_);
  auto acc_dtype = grad.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor grad_input = at::zeros({batch_size, channels, height, width}, grad.options().dtype(acc_dtype));
  const int64_t total = grad.numel();
  if (total == 0 || height == 0 || width == 0) return grad_input.to(grad.scalar_type());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_align_backward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        roi_align_backward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
            total, grad.const_data_ptr<scalar_t>(), rois.const_data_ptr<acc_t>(), batch_size, channels,
            height, width, static_cast<int>(pooled_h), static_cast<int>(pooled_w),
            static_cast<acc_t>(spatial_scale), static_cast<int>(sampling_ratio), aligned,
            grad_input.mutable_data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return grad_input.to(grad.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(anonface, CUDA, m) {
  m.impl("roi_align", &roi_align_forward_cuda);
  m.impl("_roi_align_backward", &roi_align_backward_cuda);
}

}  // namespace anonface
