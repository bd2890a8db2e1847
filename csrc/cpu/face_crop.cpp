// face_crop on the CPU: ((roi_align(frames, aligned=True, sampling_ratio=-1) [/ 255]) - mean) / std
// as [K, 3, Sh, Sw], gathering straight from either frame layout; and its backward (a scatter of
// the same weights into zero frames, one frame per task so no two tasks write one pixel).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "cpu/face_cpu.h"

namespace anonface {
namespace face {
namespace {

at::Tensor face_crop_cpu(const at::Tensor& frames, const at::Tensor& rois, at::IntArrayRef size,
                         at::ArrayRef<double> mean, at::ArrayRef<double> std_, bool channels_last) {
  const CropCall c = prepare_crop(frames, rois, size, mean, std_, channels_last);
  at::Tensor out = at::empty({c.K, 3, c.sh, c.sw}, frames.options().dtype(c.acc));
  if (c.K == 0) return out;
  const CropPlan plan = plan_crop(c.rois, c.sh, c.sw, c.bhw[1], c.bhw[2], c.acc);
  const FrameView v = frame_view(frames, channels_last);
  dispatch_frames(frames.scalar_type(), "face_crop", [&](auto s, auto a) {
    using scalar_t = decltype(s);
    using acc_t = decltype(a);
    cpu::crop<scalar_t, acc_t>(frames.data_ptr<scalar_t>(), v, plan, c.sh, c.sw,
                               crop_norm<scalar_t, acc_t>(c), out.data_ptr<acc_t>());
  });
  return out;
}

template <class acc_t>
void crop_backward_impl(const acc_t* g, const CropPlan& p, const std::array<double, 3>& s, int64_t sh,
                        int64_t sw, acc_t* gf, const FrameView& v) {
  const int64_t K = p.frame.size(0);
  std::vector<std::vector<int64_t>> lists(static_cast<size_t>(v.B));
  const int32_t* frame = p.frame.data_ptr<int32_t>();
  for (int64_t k = 0; k < K; ++k)
    if (frame[k] >= 0) lists[frame[k]].push_back(k);
  const int32_t* ys = p.ystart.data_ptr<int32_t>();
  const int32_t* yl = p.ylen.data_ptr<int32_t>();
  const int32_t* xs = p.xstart.data_ptr<int32_t>();
  const int32_t* xl = p.xlen.data_ptr<int32_t>();
  const acc_t* wy = p.wy.data_ptr<acc_t>();
  const acc_t* wx = p.wx.data_ptr<acc_t>();
  const acc_t inv[3] = {acc_t(1) / acc_t(s[0]), acc_t(1) / acc_t(s[1]), acc_t(1) / acc_t(s[2])};
  const int64_t plane = sh * sw;
  at::parallel_for(0, v.B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t k : lists[n]) {
        for (int64_t ph = 0; ph < sh; ++ph) {
          const int64_t y0 = ys[k * sh + ph], ny = yl[k * sh + ph];
          const acc_t* wyp = wy + (k * sh + ph) * p.Ly;
          for (int64_t pw = 0; pw < sw; ++pw) {
            const int64_t x0 = xs[k * sw + pw], nx = xl[k * sw + pw];
            const acc_t* wxp = wx + (k * sw + pw) * p.Lx;
            const int64_t o = k * 3 * plane + ph * sw + pw;
            const acc_t g0 = g[o] * inv[0], g1 = g[o + plane] * inv[1], g2 = g[o + 2 * plane] * inv[2];
            for (int64_t ia = 0; ia < ny; ++ia) {
              acc_t* row = gf + v.at(n, y0 + ia, x0);
              for (int64_t ib = 0; ib < nx; ++ib) {
                const acc_t w = wyp[ia] * wxp[ib];
                acc_t* px = row + ib * v.sW;
                px[0] += w * g0;
                px[v.sC] += w * g1;
                px[2 * v.sC] += w * g2;
              }
            }
          }
        }
      }
    }
  });
}

at::Tensor face_crop_backward_cpu(const at::Tensor& grad_in, const at::Tensor& rois,
                                  at::IntArrayRef frames_shape, at::ArrayRef<double> std_,
                                  bool channels_last) {
  TORCH_CHECK_VALUE(frames_shape.size() == 4, "frames_shape must have 4 values, got ", frames_shape);
  TORCH_CHECK_VALUE(grad_in.dim() == 4 && grad_in.size(1) == 3 &&
                        (grad_in.scalar_type() == at::kFloat || grad_in.scalar_type() == at::kDouble),
                    "grad must be float32/float64 [K, 3, Sh, Sw], got ", grad_in.scalar_type(), " ",
                    grad_in.sizes());
  const auto s = check_triple(std_, "std", true);
  at::Tensor gf = at::zeros(frames_shape, grad_in.options());
  check_frames(gf, channels_last, "frames_shape");
  const auto bhw = frame_bhw(gf, channels_last);
  const at::Tensor rh = host_rois(rois, grad_in.device(), bhw[0]);
  TORCH_CHECK_VALUE(grad_in.size(0) == rh.size(0), "grad must have K=", rh.size(0), " crops, got ",
                    grad_in.size(0));
  if (rh.size(0) == 0) return gf;
  const at::Tensor g = grad_in.contiguous();
  const int64_t sh = g.size(2), sw = g.size(3);
  const CropPlan plan = plan_crop(rh, sh, sw, bhw[1], bhw[2], g.scalar_type());
  const FrameView v = frame_view(gf, channels_last);
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "face_crop_backward_cpu", [&] {
    crop_backward_impl<scalar_t>(g.data_ptr<scalar_t>(), plan, s, sh, sw, gf.data_ptr<scalar_t>(), v);
  });
  return gf;
}

}  // namespace
}  // namespace face
}  // namespace anonface

TORCH_LIBRARY_IMPL(anonface, CPU, m) {
  m.impl("face_crop", &anonface::face::face_crop_cpu);
  m.impl("_face_crop_backward", &anonface::face::face_crop_backward_cpu);
}
