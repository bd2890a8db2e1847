// roi_pool on the CPU: forward (max and its argmax) and backward (scatter through the argmax).
// Contract: csrc/roi_common.h (torchvision.ops.roi_pool semantics): argmax is the flat h * W + w
// index of the first maximum inside the bin, -1 for an empty bin (whose output is 0).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>
#include <tuple>
#include <vector>

#include "roi_checks.h"
#include "roi_common.h"

namespace anonface {
namespace {

std::tuple<at::Tensor, at::Tensor> roi_pool_forward_cpu(const at::Tensor& input_, const at::Tensor& rois_,
                                                        double spatial_scale, int64_t pooled_h,
                                                        int64_t pooled_w) {
  check_roi_args(input_, rois_, pooled_h, pooled_w, "roi_pool");
  at::Tensor input = input_.contiguous();
  at::Tensor rois = rois_for(input, rois_);
  const int64_t K = rois.size(0), N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  const int PH = static_cast<int>(pooled_h), PW = static_cast<int>(pooled_w);
  at::Tensor output = at::zeros({K, C, PH, PW}, input.options());
  at::Tensor argmax = at::full({K, C, PH, PW}, -1, input.options().dtype(at::kInt));
  if (K == 0 || C == 0) return {output, argmax};

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_pool_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const acc_t* r = rois.const_data_ptr<acc_t>();
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    int32_t* am = argmax.mutable_data_ptr<int32_t>();
    at::parallel_for(0, K * C, std::max<int64_t>(1, C / 4), [&](int64_t begin, int64_t end) {
      // Bins depend only on the roi: compute them once per roi and reuse them across channels.
      std::vector<PoolBin> bins(static_cast<size_t>(PH) * PW);
      int64_t cached = -1;
      for (int64_t kc = begin; kc < end; ++kc) {
        const int64_t k = kc / C, c = kc % C;
        if (k != cached) {
          for (int ph = 0; ph < PH; ++ph)
            for (int pw = 0; pw < PW; ++pw)
              bins[ph * PW + pw] =
                  make_pool_bin<acc_t>(r + k * 5, N, static_cast<acc_t>(spatial_scale), PH, PW, ph, pw, H, W);
          cached = k;
        }
        for (int64_t bin = 0; bin < PH * PW; ++bin) {
          const PoolBin& b = bins[bin];
          const int64_t o = kc * PH * PW + bin;
          if (b.batch < 0 || b.h1 <= b.h0 || b.w1 <= b.w0) continue;  // 0 and -1 already set
          const scalar_t* plane = in + (b.batch * C + c) * H * W;
          acc_t best = -std::numeric_limits<acc_t>::max();
          int64_t best_idx = -1;
          for (int64_t h = b.h0; h < b.h1; ++h) {
            const scalar_t* row = plane + h * W;
            for (int64_t w = b.w0; w < b.w1; ++w) {
              const acc_t v = static_cast<acc_t>(row[w]);
              if (v > best) {
                best = v;
                best_idx = h * W + w;
              }
            }
          }
          out[o] = static_cast<scalar_t>(best);
          am[o] = static_cast<int32_t>(best_idx);
        }
      }
    });
  });
  return {output, argmax};
}

at::Tensor roi_pool_backward_cpu(const at::Tensor& grad_, const at::Tensor& rois_, const at::Tensor& argmax_,
                                 double spatial_scale, int64_t pooled_h, int64_t pooled_w, int64_t batch_size,
                                 int64_t channels, int64_t height, int64_t width) {
  check_roi_backward_args(grad_, rois_, batch_size, channels, pooled_h, pooled_w, "_roi_pool_backward");
  check_roi_pool_argmax(argmax_, grad_);
  const int64_t K = rois_.size(0);
  at::Tensor grad = grad_.contiguous();
  at::Tensor argmax = argmax_.contiguous();
  at::Tensor rois = rois_for(grad, rois_);
  const int64_t N = batch_size, C = channels, HW = height * width;
  const int PH = static_cast<int>(pooled_h), PW = static_cast<int>(pooled_w);
  auto acc_dtype = grad.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor grad_input = at::zeros({N, C, height, width}, grad.options().dtype(acc_dtype));
  if (K == 0 || C == 0 || HW == 0) return grad_input.to(grad.scalar_type());

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_pool_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const int32_t* am = argmax.const_data_ptr<int32_t>();
    const acc_t* r = rois.const_data_ptr<acc_t>();
    acc_t* gi = grad_input.mutable_data_ptr<acc_t>();
    at::parallel_for(0, C, 1, [&](int64_t c_begin, int64_t c_end) {
      for (int64_t k = 0; k < K; ++k) {
        const acc_t* rk = r + k * 5;
        if (!roi_finite(rk)) continue;
        const int64_t b = static_cast<int64_t>(rk[0]);
        if (b < 0 || b >= N) continue;
        for (int64_t c = c_begin; c < c_end; ++c) {
          const int64_t base = (k * C + c) * PH * PW;
          acc_t* plane = gi + (b * C + c) * HW;
          for (int64_t bin = 0; bin < PH * PW; ++bin) {
            const int32_t idx = am[base + bin];
            // Indices outside the map (a corrupt argmax) are ignored rather than written.
            if (idx >= 0 && idx < HW) plane[idx] += static_cast<acc_t>(g[base + bin]);
          }
        }
      }
    });
  });
  return grad_input.to(grad.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(anonface, CPU, m) {
  m.impl("roi_pool", &roi_pool_forward_cpu);
  m.impl("_roi_pool_backward", &roi_pool_backward_cpu);
}

}  // namespace anonface
