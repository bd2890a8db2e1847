// roi_align on the CPU: forward and backward, float and double.
// Contract: csrc/roi_common.h (torchvision.ops.roi_align semantics).
//
// Forward is parallel over (roi, channel) pairs; the bilinear taps of a roi are computed once per
// roi per thread chunk and reused across its channels. Backward is parallel over channels, so each
// thread owns a disjoint slice of grad_input and no atomics are needed.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "roi_checks.h"
#include "roi_common.h"

namespace anonface {
namespace {

template <typename acc_t>
struct Tap {
  int64_t idx[4];
  acc_t w[4];
};

// Taps of every sample of one roi, bin-major: for bin (ph, pw) the samples
// [offset[bin], offset[bin+1]) of `taps` (out-of-map samples are dropped; they add zero).
template <typename acc_t>
void roi_taps(const AlignRoi<acc_t>& a, int pooled_h, int pooled_w, int64_t height, int64_t width,
              std::vector<Tap<acc_t>>& taps, std::vector<int64_t>& offset) {
  taps.clear();
  offset.assign(static_cast<size_t>(pooled_h) * pooled_w + 1, 0);
  if (a.batch < 0) return;
  taps.reserve(static_cast<size_t>(pooled_h) * pooled_w * a.grid_h * a.grid_w);
  for (int ph = 0; ph < pooled_h; ++ph) {
    for (int pw = 0; pw < pooled_w; ++pw) {
      for (int iy = 0; iy < a.grid_h; ++iy) {
        const acc_t y = a.start_h + ph * a.bin_h +
                        (static_cast<acc_t>(iy) + acc_t(0.5)) * a.bin_h / static_cast<acc_t>(a.grid_h);
        for (int ix = 0; ix < a.grid_w; ++ix) {
          const acc_t x = a.start_w + pw * a.bin_w +
                          (static_cast<acc_t>(ix) + acc_t(0.5)) * a.bin_w / static_cast<acc_t>(a.grid_w);
          Tap<acc_t> t;
          if (bilinear_taps(y, x, height, width, t.idx, t.w)) taps.push_back(t);
        }
      }
      offset[ph * pooled_w + pw + 1] = static_cast<int64_t>(taps.size());
    }
  }
}

at::Tensor roi_align_forward_cpu(const at::Tensor& input_, const at::Tensor& rois_,
                                 double spatial_scale, int64_t pooled_h, int64_t pooled_w,
                                 int64_t sampling_ratio, bool aligned) {
  check_roi_args(input_, rois_, pooled_h, pooled_w, "roi_align");
  at::Tensor input = input_.contiguous();
  at::Tensor rois = rois_for(input, rois_);
  const int64_t K = rois.size(0), N = input.size(0), C = input.size(1), H = input.size(2),
                W = input.size(3);
  at::Tensor output = at::zeros({K, C, pooled_h, pooled_w}, input.options());
  if (K == 0 || C == 0 || H == 0 || W == 0) return output;
  const int PH = static_cast<int>(pooled_h), PW = static_cast<int>(pooled_w);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_align_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const acc_t* r = rois.const_data_ptr<acc_t>();
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, C / 4);
    at::parallel_for(0, K * C, grain, [&](int64_t begin, int64_t end) {
      std::vector<Tap<acc_t>> taps;
      std::vector<int64_t> offset;
      int64_t cached = -1;
      AlignRoi<acc_t> a{};
      for (int64_t kc = begin; kc < end; ++kc) {
        const int64_t k = kc / C, c = kc % C;
        if (k != cached) {
          a = make_align_roi<acc_t>(r + k * 5, N, static_cast<acc_t>(spatial_scale), PH, PW,
                                    static_cast<int>(sampling_ratio), aligned);
          roi_taps(a, PH, PW, H, W, taps, offset);
          cached = k;
        }
        if (a.batch < 0) continue;
        const scalar_t* plane = in + (a.batch * C + c) * H * W;
        scalar_t* o = out + kc * PH * PW;
        for (int64_t bin = 0; bin < PH * PW; ++bin) {
          acc_t sum = 0;
          for (int64_t s = offset[bin]; s < offset[bin + 1]; ++s) {
            const Tap<acc_t>& t = taps[s];
            sum += t.w[0] * static_cast<acc_t>(plane[t.idx[0]]) +
                   t.w[1] * static_cast<acc_t>(plane[t.idx[1]]) +
                   t.w[2] * static_cast<acc_t>(plane[t.idx[2]]) +
                   t.w[3] * static_cast<acc_t>(plane[t.idx[3]]);
          }
          o[bin] = static_cast<scalar_t>(sum / a.count);
        }
      }
    });
  });
  return output;
}

at::Tensor roi_align_backward_cpu(const at::Tensor& grad_, const at::Tensor& rois_,
                                  double spatial_scale, int64_t pooled_h, int64_t pooled_w,
                                  int64_t batch_size, int64_t channels, int64_t height,
                                  int64_t width, int64_t sampling_ratio, bool aligned) {
  TORCH_CHECK_VALUE(grad_.dim() == 4 && grad_.size(2) == pooled_h && grad_.size(3) == pooled_w,
                    "_roi_align_backward: grad must be [K, C, ", pooled_h, ", ", pooled_w,
                    "], got ", grad_.sizes());
  at::Tensor probe = at::empty({batch_size, channels, 0, 0}, grad_.options());
  check_roi_args(probe, rois_, pooled_h, pooled_w, "_roi_align_backward");
  TORCH_CHECK_VALUE(grad_.size(0) == rois_.size(0) && grad_.size(1) == channels,
                    "_roi_align_backward: grad must be [K=", rois_.size(0), ", C=", channels,
                    ", ...], got ", grad_.sizes());
  at::Tensor grad = grad_.contiguous();
  at::Tensor rois = rois_for(grad, rois_);
  const int64_t K = rois.size(0), N = batch_size, C = channels, H = height, W = width;
  const int PH = static_cast<int>(pooled_h), PW = static_cast<int>(pooled_w);
  // Accumulate in the opmath type, then cast once.
  auto acc_dtype = grad.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor grad_input = at::zeros({N, C, H, W}, grad.options().dtype(acc_dtype));
  if (K == 0 || C == 0 || H == 0 || W == 0) return grad_input.to(grad.scalar_type());

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_align_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const acc_t* r = rois.const_data_ptr<acc_t>();
    acc_t* gi = grad_input.mutable_data_ptr<acc_t>();
    at::parallel_for(0, C, 1, [&](int64_t c_begin, int64_t c_end) {
      std::vector<Tap<acc_t>> taps;
      std::vector<int64_t> offset;
      for (int64_t k = 0; k < K; ++k) {
        AlignRoi<acc_t> a = make_align_roi<acc_t>(r + k * 5, N, static_cast<acc_t>(spatial_scale),
                                                  PH, PW, static_cast<int>(sampling_ratio), aligned);
        if (a.batch < 0) continue;
        roi_taps(a, PH, PW, H, W, taps, offset);
        for (int64_t c = c_begin; c < c_end; ++c) {
          acc_t* plane = gi + (a.batch * C + c) * H * W;
          const scalar_t* go = g + (k * C + c) * PH * PW;
          for (int64_t bin = 0; bin < PH * PW; ++bin) {
            const acc_t v = static_cast<acc_t>(go[bin]) / a.count;
            for (int64_t s = offset[bin]; s < offset[bin + 1]; ++s) {
              const Tap<acc_t>& t = taps[s];
              plane[t.idx[0]] += t.w[0] * v;
              plane[t.idx[1]] += t.w[1] * v;
              plane[t.idx[2]] += t.w[2] * v;
              plane[t.idx[3]] += t.w[3] * v;
            }
          }
        }
      }
    });
  });
  return grad_input.to(grad.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(anonface, CPU, m) {
  m.impl("roi_align", &roi_align_forward_cpu);
  m.impl("_roi_align_backward", &roi_align_backward_cpu);
}

}  // namespace anonface
