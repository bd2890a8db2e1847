// Argument checks shared by the CPU and CUDA entry points of the RoI ops.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace anonface {

// Validates input [N, C, H, W] and rois [K, 5]; throws a c10::ValueError / c10::Error naming the
// argument on bad input. Checks batch indices on the host (a device sync on CUDA) so that an
// out-of-range index is an error rather than a silent zero.
void check_roi_args(const at::Tensor& input, const at::Tensor& rois, int64_t pooled_h,
                    int64_t pooled_w, const char* op);

// The rois as a contiguous tensor in the accumulation dtype of `input` (double for double input,
// float otherwise), on input's device.
at::Tensor rois_for(const at::Tensor& input, const at::Tensor& rois);

}  // namespace anonface
