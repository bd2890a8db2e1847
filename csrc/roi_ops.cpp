// Schemas of the RoI pooling ops and the checks every backend shares.
// Kernels: csrc/cpu/roi_*_kernel.cpp and csrc/cuda/roi_*_kernel.cu. Autograd and fake (meta)
// implementations are registered from Python (anonface/ops/roi.py).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "roi_checks.h"

namespace anonface {

void check_roi_args(const at::Tensor& input, const at::Tensor& rois, int64_t pooled_h, int64_t pooled_w,
                    const char* op) {
  TORCH_CHECK_VALUE(input.dim() == 4, op, ": input must be a 4-D tensor [N, C, H, W], got shape ",
                    input.sizes());
  TORCH_CHECK_VALUE(at::isFloatingType(input.scalar_type()), op, ": input must be a floating tensor, got ",
                    input.scalar_type());
  TORCH_CHECK_VALUE(rois.dim() == 2 && rois.size(1) == 5, op,
                    ": rois must be a 2-D tensor [K, 5] of (batch_index, x1, y1, x2, y2), got shape ",
                    rois.sizes());
  TORCH_CHECK_VALUE(at::isFloatingType(rois.scalar_type()), op, ": rois must be a floating tensor, got ",
                    rois.scalar_type());
  TORCH_CHECK_VALUE(input.device() == rois.device(), op, ": rois are on ", rois.device(), " but input is on ",
                    input.device());
  TORCH_CHECK_VALUE(pooled_h > 0 && pooled_w > 0 && pooled_h <= kMaxPooledSize && pooled_w <= kMaxPooledSize,
                    op, ": output_size (pooled_height, pooled_width) must be positive and at most ",
                    kMaxPooledSize, " per side, got (", pooled_h, ", ", pooled_w, ")");
  if (rois.size(0) > 0) {
    at::Tensor idx = rois.select(1, 0);
    // NaN fails both comparisons, so NaN indices are rejected too.
    bool ok = at::logical_and(idx >= 0, idx < static_cast<double>(input.size(0))).all().item<bool>();
    TORCH_CHECK_INDEX(ok, op, ": every rois[:, 0] (batch index) must lie in [0, ", input.size(0),
                      "); got values from ", idx.min().item<double>(), " to ", idx.max().item<double>());
  }
}

void check_sampling_ratio(int64_t sampling_ratio, const char* op) {
  TORCH_CHECK_VALUE(sampling_ratio >= -1 && sampling_ratio <= kMaxSamplingRatio, op,
                    ": sampling_ratio must be in [-1, ", kMaxSamplingRatio,
                    "] samples per bin and axis (-1 or 0: adaptive), got ", sampling_ratio);
}

void check_roi_backward_args(const at::Tensor& grad, const at::Tensor& rois, int64_t batch_size,
                             int64_t channels, int64_t pooled_h, int64_t pooled_w, const char* op) {
  at::Tensor probe = at::empty({batch_size, channels, 0, 0}, grad.options());
  check_roi_args(probe, rois, pooled_h, pooled_w, op);
  TORCH_CHECK_VALUE(grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == channels &&
                        grad.size(2) == pooled_h && grad.size(3) == pooled_w,
                    op, ": grad must be [", rois.size(0), ", ", channels, ", ", pooled_h, ", ", pooled_w,
                    "], got ", grad.sizes());
}

void check_roi_pool_argmax(const at::Tensor& argmax, const at::Tensor& grad) {
  TORCH_CHECK_VALUE(
      argmax.sizes() == grad.sizes() && argmax.scalar_type() == at::kInt && argmax.device() == grad.device(),
      "_roi_pool_backward: argmax must be int32 of grad's shape and device, got ", argmax.scalar_type(), " ",
      argmax.sizes(), " on ", argmax.device());
}

at::Tensor rois_for(const at::Tensor& input, const at::Tensor& rois) {
  auto acc = input.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return rois.to(acc).contiguous();
}

}  // namespace anonface

TORCH_LIBRARY_FRAGMENT(anonface, m) {
  m.def(
      "roi_align(Tensor input, Tensor rois, float spatial_scale, int pooled_height, "
      "int pooled_width, int sampling_ratio, bool aligned) -> Tensor");
  m.def(
      "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, int pooled_height, "
      "int pooled_width, int batch_size, int channels, int height, int width, int sampling_ratio, "
      "bool aligned) -> Tensor");
  m.def(
      "roi_pool(Tensor input, Tensor rois, float spatial_scale, int pooled_height, "
      "int pooled_width) -> (Tensor, Tensor)");
  m.def(
      "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, "
      "int pooled_height, int pooled_width, int batch_size, int channels, int height, "
      "int width) -> Tensor");
}
