// roi_align on the CPU: forward and backward, float and double.
// Contract: csrc/roi_common.h (torchvision.ops.roi_align semantics).
//
// Bilinear sampling is separable, so each roi's row and column taps are computed once per roi per
// thread chunk and reused across its channels. Forward is parallel over (roi, channel) pairs and
// sums each bin row vertically first (a vectorisable pass over the touched columns), then
// horizontally per bin. Backward is parallel over channels, so each
// thread owns a disjoint slice of grad_input and no atomics are needed.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "roi_checks.h"
#include "roi_common.h"

namespace anonface {
namespace {

// One valid sample along one axis: its two neighbouring rows (or columns) and their weights.
// Bilinear interpolation and the "outside [-1, size]" rule are separable, so a roi's samples are
// the product of its row samples and its column samples.
template <typename acc_t>
struct AxisTap {
  int64_t lo, hi;
  acc_t w_lo, w_hi;
};

// Samples of bin p along one axis are taps[offset[p] .. offset[p + 1]).
template <typename acc_t>
void axis_taps(acc_t start, acc_t bin, int grid, int pooled, int64_t size, std::vector<AxisTap<acc_t>>& taps,
               std::vector<int64_t>& offset) {
  taps.clear();
  offset.assign(static_cast<size_t>(pooled) + 1, 0);
  for (int p = 0; p < pooled; ++p) {
    for (int i = 0; i < grid; ++i) {
      const acc_t pos =
          start + p * bin + (static_cast<acc_t>(i) + acc_t(0.5)) * bin / static_cast<acc_t>(grid);
      int64_t idx[4];
      acc_t w[4];
      // Reuse the 2-D tap helper on a 1-pixel-wide map: taps 0 and 2 are (lo, hi) along this axis.
      if (!bilinear_taps(pos, acc_t(0), size, int64_t(1), idx, w)) continue;
      taps.push_back({idx[0], idx[2], w[0], w[2]});
    }
    offset[p + 1] = static_cast<int64_t>(taps.size());
  }
}

template <typename acc_t>
struct RoiTaps {
  std::vector<AxisTap<acc_t>> y, x;
  std::vector<int64_t> oy, ox;
  // Forward only: the distinct map columns the x taps touch (ascending; column taps are monotonic),
  // and each x tap's (lo, hi) as positions in that list.
  std::vector<int64_t> cols;
  std::vector<int64_t> x_lo_pos, x_hi_pos;
  bool cols_contiguous = false;

  void compute(const AlignRoi<acc_t>& a, int PH, int PW, int64_t H, int64_t W, bool with_cols) {
    axis_taps(a.start_h, a.bin_h, a.grid_h, PH, H, y, oy);
    axis_taps(a.start_w, a.bin_w, a.grid_w, PW, W, x, ox);
    if (!with_cols) return;
    cols.clear();
    x_lo_pos.resize(x.size());
    x_hi_pos.resize(x.size());
    auto pos_of = [&](int64_t col) {
      if (cols.empty() || cols.back() != col) cols.push_back(col);
      return static_cast<int64_t>(cols.size()) - 1;
    };
    for (size_t i = 0; i < x.size(); ++i) {
      x_lo_pos[i] = pos_of(x[i].lo);
      x_hi_pos[i] = pos_of(x[i].hi);
    }
    cols_contiguous = cols.empty() || cols.back() - cols.front() + 1 == static_cast<int64_t>(cols.size());
  }
};

at::Tensor roi_align_forward_cpu(const at::Tensor& input_, const at::Tensor& rois_, double spatial_scale,
                                 int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  check_roi_args(input_, rois_, pooled_h, pooled_w, "roi_align");
  check_sampling_ratio(sampling_ratio, "roi_align");
  at::Tensor input = input_.contiguous();
  at::Tensor rois = rois_for(input, rois_);
  const int64_t K = rois.size(0), N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  at::Tensor output = at::zeros({K, C, pooled_h, pooled_w}, input.options());
  if (K == 0 || C == 0 || H == 0 || W == 0) return output;
  const int PH = static_cast<int>(pooled_h), PW = static_cast<int>(pooled_w);

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "roi_align_forward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const scalar_t* in = input.const_data_ptr<scalar_t>();
        const acc_t* r = rois.const_data_ptr<acc_t>();
        scalar_t* out = output.mutable_data_ptr<scalar_t>();
        const int64_t grain = std::max<int64_t>(1, C / 4);
        at::parallel_for(0, K * C, grain, [&](int64_t begin, int64_t end) {
          RoiTaps<acc_t> t;
          std::vector<acc_t> col_sum;
          int64_t cached = -1;
          AlignRoi<acc_t> a{};
          for (int64_t kc = begin; kc < end; ++kc) {
            const int64_t k = kc / C, c = kc % C;
            if (k != cached) {
              a = make_align_roi<acc_t>(r + k * 5, N, static_cast<acc_t>(spatial_scale), PH, PW,
                                        static_cast<int>(sampling_ratio), aligned);
              if (a.batch >= 0) t.compute(a, PH, PW, H, W, /*with_cols=*/true);
              cached = k;
            }
            if (a.batch < 0) continue;
            const scalar_t* plane = in + (a.batch * C + c) * H * W;
            scalar_t* o = out + kc * PH * PW;
            const int64_t ncols = static_cast<int64_t>(t.cols.size());
            col_sum.resize(ncols);
            for (int ph = 0; ph < PH; ++ph) {
              // Vertical pass: the row samples of bin row ph, combined per touched column.
              std::fill(col_sum.begin(), col_sum.end(), acc_t(0));
              for (int64_t sy = t.oy[ph]; sy < t.oy[ph + 1]; ++sy) {
                const AxisTap<acc_t>& ty = t.y[sy];
                const scalar_t* row_lo = plane + ty.lo * W;
                const scalar_t* row_hi = plane + ty.hi * W;
                if (t.cols_contiguous && ncols > 0) {
                  const scalar_t* lo = row_lo + t.cols[0];
                  const scalar_t* hi = row_hi + t.cols[0];
                  for (int64_t j = 0; j < ncols; ++j)
                    col_sum[j] += ty.w_lo * static_cast<acc_t>(lo[j]) + ty.w_hi * static_cast<acc_t>(hi[j]);
                } else {
                  for (int64_t j = 0; j < ncols; ++j)
                    col_sum[j] += ty.w_lo * static_cast<acc_t>(row_lo[t.cols[j]]) +
                                  ty.w_hi * static_cast<acc_t>(row_hi[t.cols[j]]);
                }
              }
              // Horizontal pass: each bin's column samples.
              for (int pw = 0; pw < PW; ++pw) {
                acc_t sum = 0;
                for (int64_t sx = t.ox[pw]; sx < t.ox[pw + 1]; ++sx)
                  sum += t.x[sx].w_lo * col_sum[t.x_lo_pos[sx]] + t.x[sx].w_hi * col_sum[t.x_hi_pos[sx]];
                o[ph * PW + pw] = static_cast<scalar_t>(sum / a.count);
              }
            }
          }
        });
      });
  return output;
}

at::Tensor roi_align_backward_cpu(const at::Tensor& grad_, const at::Tensor& rois_, double spatial_scale,
                                  int64_t pooled_h, int64_t pooled_w, int64_t batch_size, int64_t channels,
                                  int64_t height, int64_t width, int64_t sampling_ratio, bool aligned) {
  check_roi_backward_args(grad_, rois_, batch_size, channels, pooled_h, pooled_w, "_roi_align_backward");
  check_sampling_ratio(sampling_ratio, "_roi_align_backward");
  at::Tensor grad = grad_.contiguous();
  at::Tensor rois = rois_for(grad, rois_);
  const int64_t K = rois.size(0), N = batch_size, C = channels, H = height, W = width;
  const int PH = static_cast<int>(pooled_h), PW = static_cast<int>(pooled_w);
  // Accumulate in the opmath type, then cast once.
  auto acc_dtype = grad.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor grad_input = at::zeros({N, C, H, W}, grad.options().dtype(acc_dtype));
  if (K == 0 || C == 0 || H == 0 || W == 0) return grad_input.to(grad.scalar_type());

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_align_backward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const scalar_t* g = grad.const_data_ptr<scalar_t>();
        const acc_t* r = rois.const_data_ptr<acc_t>();
        acc_t* gi = grad_input.mutable_data_ptr<acc_t>();
        at::parallel_for(0, C, 1, [&](int64_t c_begin, int64_t c_end) {
          RoiTaps<acc_t> t;
          for (int64_t k = 0; k < K; ++k) {
            AlignRoi<acc_t> a = make_align_roi<acc_t>(r + k * 5, N, static_cast<acc_t>(spatial_scale), PH, PW,
                                                      static_cast<int>(sampling_ratio), aligned);
            if (a.batch < 0) continue;
            t.compute(a, PH, PW, H, W, /*with_cols=*/false);
            for (int64_t c = c_begin; c < c_end; ++c) {
              acc_t* plane = gi + (a.batch * C + c) * H * W;
              const scalar_t* go = g + (k * C + c) * PH * PW;
              for (int ph = 0; ph < PH; ++ph) {
                for (int pw = 0; pw < PW; ++pw) {
                  const acc_t v = static_cast<acc_t>(go[ph * PW + pw]) / a.count;
                  for (int64_t sy = t.oy[ph]; sy < t.oy[ph + 1]; ++sy) {
                    const AxisTap<acc_t>& ty = t.y[sy];
                    acc_t* row_lo = plane + ty.lo * W;
                    acc_t* row_hi = plane + ty.hi * W;
                    const acc_t v_lo = ty.w_lo * v, v_hi = ty.w_hi * v;
                    for (int64_t sx = t.ox[pw]; sx < t.ox[pw + 1]; ++sx) {
                      const AxisTap<acc_t>& tx = t.x[sx];
                      row_lo[tx.lo] += tx.w_lo * v_lo;
                      row_lo[tx.hi] += tx.w_hi * v_lo;
                      row_hi[tx.lo] += tx.w_lo * v_hi;
                      row_hi[tx.hi] += tx.w_hi * v_hi;
                    }
                  }
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
