// Host-side argument checks and per-box planning shared by the CPU and CUDA face kernels.
// These checks are the one home of the face ops' argument checks (ValueError in Python, naming the
// argument): the Python wrappers (anonface/ops/face.py) only convert Python values, and their fake
// kernels repeat the shape/dtype/device checks with the same messages for torch.compile.
// Plans are computed once per call on the host in double precision (the CUDA entry points copy
// the rois to the host: the frame-index check needs that synchronisation anyway) and uploaded,
// so both backends see bit-identical geometry.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/string_view.h>

#include <array>
#include <type_traits>

#include "face_common.h"

namespace anonface {
namespace face {

// frames: 4-D uint8/float32/float64 with 3 channels in dim 3 (channels_last) or dim 1.
void check_frames(const at::Tensor& frames, bool channels_last, const char* name = "frames");
FrameView frame_view(const at::Tensor& frames, bool channels_last);
// Shape [B, H, W, 3] or [B, 3, H, W] as the caller's layout asks.
std::array<int64_t, 3> frame_bhw(const at::Tensor& frames, bool channels_last);
// Accumulation dtype: float64 for float64 frames, float32 otherwise.
at::ScalarType acc_type(at::ScalarType frames_dtype);

// Checks rois [K, 5] (floating, on `device`) and that every frame index is an integer in
// [0, n_frames); returns them as a contiguous CPU float64 tensor.
at::Tensor host_rois(const at::Tensor& rois, const at::Device& device, int64_t n_frames);

// faces [K, 3, Sh, Sw] in the accumulation dtype of `frames`, on their device.
void check_faces(const at::Tensor& faces, const at::Tensor& frames, int64_t K);

std::array<double, 3> check_triple(at::ArrayRef<double> v, const char* name, bool nonzero);
int32_t parse_mask(c10::string_view mask);
float inv_band(double feather);  // also checks feather in [0, 0.5]

// The frame dtypes of the face ops with their accumulation types: calls f(scalar_t{}, acc_t{}) for
// uint8 (float accumulation), float32 and float64 frames (so each entry point is written once).
template <class F>
void dispatch_frames(at::ScalarType dtype, const char* op, F&& f) {
  switch (dtype) {
    case at::kByte:
      return f(uint8_t{}, float{});
    case at::kFloat:
      return f(float{}, float{});
    case at::kDouble:
      return f(double{}, double{});
    default:
      TORCH_CHECK_VALUE(false, op, ": frames must be uint8, float32 or float64, got ", dtype);
  }
}

// The checked arguments of one forward call, shared by the CPU and CUDA entry points: check,
// then plan, then each backend only launches.
struct FaceCall {
  std::array<int64_t, 3> bhw{};  // frames' [B, H, W]
  at::Tensor rois;               // checked, on the host, float64 [K, 5]
  int64_t K = 0;
};
struct CropCall : FaceCall {
  std::array<double, 3> mean{}, stdv{};
  int64_t sh = 0, sw = 0;
  at::ScalarType acc = at::kFloat;
};
struct PasteCall : FaceCall {
  std::array<double, 3> mean{}, stdv{};
  int32_t mask = 0;
  float inv_band = 0.f;
};
struct ModifyCall : FaceCall {
  int32_t method = 0;
  int32_t mask = 0;
  float inv_band = 0.f;
};
CropCall prepare_crop(const at::Tensor& frames, const at::Tensor& rois, at::IntArrayRef size,
                      at::ArrayRef<double> mean, at::ArrayRef<double> std_, bool channels_last);
PasteCall prepare_paste(const at::Tensor& frames, const at::Tensor& faces, const at::Tensor& rois,
                        at::ArrayRef<double> mean, at::ArrayRef<double> std_, c10::string_view mask,
                        double feather, bool channels_last);
ModifyCall prepare_modify(const at::Tensor& frames, const at::Tensor& rois, c10::string_view method,
                          double strength, c10::string_view mask, double feather, bool channels_last);

// face_modify / face_modify_ of one backend: check the arguments, copy the frames unless in place
// (`copy(frames)`), then draw every box with `draw(scalar_t{}, acc_t{}, call, out)`. Returns the
// frames drawn on (`frames` itself in place).
template <class Copy, class Draw>
at::Tensor modify_frames(const at::Tensor& frames, const at::Tensor& rois, c10::string_view method,
                         double strength, c10::string_view mask, double feather, bool channels_last,
                         bool inplace, Copy&& copy, Draw&& draw) {
  TORCH_CHECK_VALUE(!inplace || frames.is_non_overlapping_and_dense(),
                    "frames must not overlap in memory (e.g. expanded) for an in-place modify");
  const ModifyCall c = prepare_modify(frames, rois, method, strength, mask, feather, channels_last);
  at::Tensor out = inplace ? frames : copy(frames);
  if (c.K > 0)
    dispatch_frames(frames.scalar_type(), "face_modify", [&](auto s, auto a) { draw(s, a, c, out); });
  return out;
}

// The crop normalisation of a call in the accumulation type (scale 255 for uint8 frames).
template <class scalar_t, class acc_t>
Norm<acc_t> crop_norm(const CropCall& c) {
  Norm<acc_t> n{};
  for (int i = 0; i < 3; ++i) n.mean[i] = acc_t(c.mean[i]), n.stdv[i] = acc_t(c.stdv[i]);
  n.scale = std::is_same<scalar_t, uint8_t>::value ? acc_t(255) : acc_t(1);
  return n;
}

// The source of a face_paste: normalised faces [K, 3, Sh, Sw] de-normalised into the frames' units.
template <class scalar_t, class acc_t>
Source<acc_t> face_source(const PasteCall& c, const acc_t* faces) {
  Source<acc_t> src{};
  src.kind = kFace;
  src.data = faces;
  for (int i = 0; i < 3; ++i) src.mean[i] = acc_t(c.mean[i]), src.stdv[i] = acc_t(c.stdv[i]);
  src.scale = std::is_same<scalar_t, uint8_t>::value ? acc_t(255) : acc_t(1);
  return src;
}

struct CropPlan {
  at::Tensor frame;         // int32 [K], -1 = empty crop
  at::Tensor ystart, ylen;  // int32 [K, Sh]
  at::Tensor xstart, xlen;  // int32 [K, Sw]
  at::Tensor wy, wx;        // acc [K, Sh, Ly], [K, Sw, Lx]
  int64_t Ly = 0, Lx = 0;
  CropPlan to(const at::Device& device) const;
};
// roi_align (aligned=True, adaptive sampling grid) weights of every box, separable per axis.
// replicate: samples outside the frame read its nearest edge pixel instead of counting as zero,
// so boxes partly outside the frame are not darkened (the blur grid of face_modify).
CropPlan plan_crop(const at::Tensor& rois_host, int64_t sh, int64_t sw, int64_t H, int64_t W,
                   at::ScalarType acc, bool replicate = false);

// PasteGeom per box, packed in a CPU uint8 tensor [K * sizeof(PasteGeom)].
at::Tensor plan_paste(const at::Tensor& rois_host, int64_t H, int64_t W, int64_t sh, int64_t sw);
inline const PasteGeom* geoms_ptr(const at::Tensor& packed) {
  return reinterpret_cast<const PasteGeom*>(packed.data_ptr<uint8_t>());
}
// Pixel bounds of the pixelate cells: int32 [K, 2, cells + 1] (rows, then columns); cell c
// covers [b[c], b[c + 1]) in absolute frame pixels.
at::Tensor plan_cells(const at::Tensor& geoms_host, int32_t cells);

int64_t blur_grid(double strength);
at::Tensor gaussian_taps(double sigma, at::ScalarType acc);  // CPU [2r + 1]

double noise_inv_sd();

}  // namespace face
}  // namespace anonface

namespace anonface {
namespace face {
// face_modify methods map onto SourceKind: pixelate -> kCells, blur -> kFace, solid, noise.
int32_t parse_method(c10::string_view method);
void check_strength(int32_t method, double strength);
}  // namespace face
}  // namespace anonface
