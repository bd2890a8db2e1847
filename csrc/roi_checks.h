// Argument checks shared by the CPU and CUDA entry points of the RoI ops.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace anonface {

// Largest pooled output side, and largest explicit sampling_ratio of roi_align (samples per bin
// and axis): beyond them a call would run for minutes or overflow the kernels' int arithmetic.
constexpr int64_t kMaxPooledSize = 1 << 16;
constexpr int64_t kMaxSamplingRatio = 64;
void check_sampling_ratio(int64_t sampling_ratio, const char* op);

// Validates input [N, C, H, W] and rois [K, 5]; throws a c10::ValueError / c10::Error naming the
// argument on bad input. Checks batch indices on the host (a device sync on CUDA) so that an
// out-of-range index is an error rather than a silent zero.
void check_roi_args(const at::Tensor& input, const at::Tensor& rois, int64_t pooled_h, int64_t pooled_w,
                    const char* op);

// Backward entry points: the checks above for rois against a [batch_size, channels, ., .] input,
// and grad of shape [K, channels, pooled_h, pooled_w].
void check_roi_backward_args(const at::Tensor& grad, const at::Tensor& rois, int64_t batch_size,
                             int64_t channels, int64_t pooled_h, int64_t pooled_w, const char* op);

// roi_pool's argmax: int32 with grad's shape and device.
void check_roi_pool_argmax(const at::Tensor& argmax, const at::Tensor& grad);

// The rois as a contiguous tensor in the accumulation dtype of `input` (double for double input,
// float otherwise), on input's device.
at::Tensor rois_for(const at::Tensor& input, const at::Tensor& rois);

}  // namespace anonface
