// roi_pool on CUDA: forward (max + argmax, one thread per output) and backward (atomic scatter
// through the argmax). Contract: csrc/roi_common.h (torchvision.ops.roi_pool semantics).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <ATen/cuda/Atomic.cuh>
#include <tuple>

#include "cuda/cuda_utils.cuh"
#include "roi_checks.h"
#include "roi_common.h"

namespace anonface {
namespace {

using cuda::blocks_for;
using cuda::kThreads;

template <typename scalar_t, typename acc_t>
__global__ void roi_pool_forward_kernel(int64_t total, const scalar_t* __restrict__ input,
                                        const acc_t* __restrict__ rois, int64_t N, int64_t C, int64_t H,
                                        int64_t W, int PH, int PW, acc_t scale, scalar_t* __restrict__ output,
                                        int32_t* __restrict__ argmax) {
  ANONFACE_CUDA_LOOP(i, total) {
    const int pw = static_cast<int>(i % PW);
    const int ph = static_cast<int>((i / PW) % PH);
    const int64_t c = (i / (PW * PH)) % C;
    const int64_t k = i / (PW * PH * C);
    const PoolBin b = make_pool_bin<acc_t>(rois + k * 5, N, scale, PH, PW, ph, pw, H, W);
    if (b.batch < 0 || b.h1 <= b.h0 || b.w1 <= b.w0) {
      output[i] = scalar_t(0);
      argmax[i] = -1;
      continue;
    }
    const scalar_t* plane = input + (b.batch * C + c) * H * W;
    acc_t best = -std::numeric_limits<acc_t>::max();
    int64_t best_idx = -1;
    for (int64_t h = b.h0; h < b.h1; ++h) {
      for (int64_t w = b.w0; w < b.w1; ++w) {
        const acc_t v = static_cast<acc_t>(plane[h * W + w]);
        if (v > best) {
          best = v;
          best_idx = h * W + w;
        }
      }
    }
    output[i] = static_cast<scalar_t>(best);
    argmax[i] = static_cast<int32_t>(best_idx);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void roi_pool_backward_kernel(int64_t total, const scalar_t* __restrict__ grad,
                                         const int32_t* __restrict__ argmax, const acc_t* __restrict__ rois,
                                         int64_t N, int64_t C, int64_t HW, int64_t PHW,
                                         acc_t* __restrict__ grad_input) {
  ANONFACE_CUDA_LOOP(i, total) {
    const int64_t c = (i / PHW) % C;
    const int64_t k = i / (PHW * C);
    const acc_t* r = rois + k * 5;
    if (!roi_finite(r)) continue;
    const int64_t b = static_cast<int64_t>(r[0]);
    const int32_t idx = argmax[i];
    if (b < 0 || b >= N || idx < 0 || idx >= HW) continue;
    gpuAtomicAdd(grad_input + (b * C + c) * HW + idx, static_cast<acc_t>(grad[i]));
  }
}

std::tuple<at::Tensor, at::Tensor> roi_pool_forward_cuda(const at::Tensor& input_, const at::Tensor& rois_,
                                                         double spatial_scale, int64_t pooled_h,
                                                         int64_t pooled_w) {
  check_roi_args(input_, rois_, pooled_h, pooled_w, "roi_pool");
  c10::cuda::CUDAGuard guard(input_.device());
  at::Tensor input = input_.contiguous();
  at::Tensor rois = rois_for(input, rois_);
  const int64_t K = rois.size(0), N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  at::Tensor output = at::zeros({K, C, pooled_h, pooled_w}, input.options());
  at::Tensor argmax = at::full({K, C, pooled_h, pooled_w}, -1, input.options().dtype(at::kInt));
  const int64_t total = output.numel();
  if (total == 0) return {output, argmax};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "roi_pool_forward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        roi_pool_forward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
            total, input.const_data_ptr<scalar_t>(), rois.const_data_ptr<acc_t>(), N, C, H, W,
            static_cast<int>(pooled_h), static_cast<int>(pooled_w), static_cast<acc_t>(spatial_scale),
            output.mutable_data_ptr<scalar_t>(), argmax.mutable_data_ptr<int32_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return {output, argmax};
}

at::Tensor roi_pool_backward_cuda(const at::Tensor& grad_, const at::Tensor& rois_, const at::Tensor& argmax_,
                                  double spatial_scale, int64_t pooled_h, int64_t pooled_w,
                                  int64_t batch_size, int64_t channels, int64_t height, int64_t width) {
  check_roi_backward_args(grad_, rois_, batch_size, channels, pooled_h, pooled_w, "_roi_pool_backward");
  check_roi_pool_argmax(argmax_, grad_);
  c10::cuda::CUDAGuard guard(grad_.device());
  at::Tensor grad = grad_.contiguous();
  at::Tensor argmax = argmax_.contiguous();
  at::Tensor rois = rois_for(grad, rois_);
  auto acc_dtype = grad.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor grad_input = at::zeros({batch_size, channels, height, width}, grad.options().dtype(acc_dtype));
  const int64_t total = grad.numel();
  if (total == 0 || height * width == 0) return grad_input.to(grad.scalar_type());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_pool_backward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        roi_pool_backward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
            total, grad.const_data_ptr<scalar_t>(), argmax.const_data_ptr<int32_t>(),
            rois.const_data_ptr<acc_t>(), batch_size, channels, height * width, pooled_h * pooled_w,
            grad_input.mutable_data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return grad_input.to(grad.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(anonface, CUDA, m) {
  m.impl("roi_pool", &roi_pool_forward_cuda);
  m.impl("_roi_pool_backward", &roi_pool_backward_cuda);
}

}  // namespace anonface
