// face_paste on the CPU: every pixel whose centre lies in box k samples face k bilinearly,
// de-normalises it and is blended alpha * face + (1 - alpha) * frame, boxes in order, uint8
// rounded once at the end; and its backward with respect to the frames and the faces.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "cpu/face_cpu.h"

namespace anonface {
namespace face {
namespace {

// Writes the pasted frames into `out` (a copy of `frames`, or `frames` itself: every pixel is
// read before it is written, by the same thread).
void paste_into(const at::Tensor& frames, at::Tensor& out, const at::Tensor& faces_in, const at::Tensor& rois,
                at::ArrayRef<double> mean, at::ArrayRef<double> std_, c10::string_view mask, double feather,
                bool channels_last, bool inplace) {
  const PasteCall c = prepare_paste(frames, faces_in, rois, mean, std_, mask, feather, channels_last);
  if (!inplace) out = cpu::copy_frames(frames);
  if (c.K == 0) return;
  const at::Tensor faces = faces_in.contiguous();
  const at::Tensor geoms = plan_paste(c.rois, c.bhw[1], c.bhw[2], faces.size(2), faces.size(3));
  const FrameView vin = frame_view(frames, channels_last), vout = frame_view(out, channels_last);
  dispatch_frames(frames.scalar_type(), "face_paste", [&](auto s, auto a) {
    using scalar_t = decltype(s);
    using acc_t = decltype(a);
    cpu::paste<scalar_t, acc_t>(frames.data_ptr<scalar_t>(), vin, out.data_ptr<scalar_t>(), vout,
                                geoms_ptr(geoms), c.K,
                                face_source<scalar_t, acc_t>(c, faces.data_ptr<acc_t>()), c.mask, c.inv_band);
  });
}

at::Tensor face_paste_cpu(const at::Tensor& frames, const at::Tensor& faces, const at::Tensor& rois,
                          at::ArrayRef<double> mean, at::ArrayRef<double> std_, c10::string_view mask,
                          double feather, bool channels_last) {
  at::Tensor out;
  paste_into(frames, out, faces, rois, mean, std_, mask, feather, channels_last, false);
  return out.defined() ? out : frames.clone();
}

void face_paste_inplace_cpu(const at::Tensor& frames, const at::Tensor& faces, const at::Tensor& rois,
                            at::ArrayRef<double> mean, at::ArrayRef<double> std_, c10::string_view mask,
                            double feather, bool channels_last) {
  TORCH_CHECK_VALUE(frames.is_non_overlapping_and_dense(),
                    "frames must not overlap in memory (e.g. expanded) for an in-place paste");
  at::Tensor out = frames;
  paste_into(frames, out, faces, rois, mean, std_, mask, feather, channels_last, true);
}

// Product of (1 - alpha) over the boxes of `list` after position `from` that cover (i, j).
template <class acc_t>
acc_t transmit(const PasteGeom* g, const std::vector<int32_t>& list, size_t from, int64_t i, int64_t j,
               int32_t mk, float ib) {
  acc_t t = 1;
  for (size_t q = from; q < list.size(); ++q) {
    const PasteGeom& h = g[list[q]];
    if (i < h.i0 || i >= h.i1 || j < h.j0 || j >= h.j1) continue;
    t = rmul(t, rsub(acc_t(1), static_cast<acc_t>(mask_alpha(h, i, j, mk, ib))));
  }
  return t;
}

template <class acc_t>
void paste_backward_impl(const acc_t* grad, const FrameView& vg, acc_t* gfr, const FrameView& vf, acc_t* gfa,
                         const PasteGeom* g, int64_t K, const std::array<double, 3>& s, int32_t mk,
                         float ib) {
  const auto lists = cpu::boxes_by_frame(g, K, vg.B);
  // d out / d frame = prod over covering boxes of (1 - alpha): rows in parallel.
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, vg.W));
  at::parallel_for(0, vg.B * vg.H, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / vg.H, i = t % vg.H;
      for (int32_t k : lists[n]) {
        if (i < g[k].i0 || i >= g[k].i1) continue;
        for (int64_t j = g[k].j0; j < g[k].j1; ++j) {
          const acc_t a = static_cast<acc_t>(mask_alpha(g[k], i, j, mk, ib));
          acc_t* p = gfr + vf.at(n, i, j);
          for (int c = 0; c < 3; ++c) p[c * vf.sC] = rmul(p[c * vf.sC], rsub(acc_t(1), a));
        }
      }
    }
  });
  // d out / d face k: alpha_k * prod of later (1 - alpha) * std, spread over the bilinear taps.
  // One box per task: each task owns its face's gradient.
  std::vector<std::pair<int64_t, size_t>> where(static_cast<size_t>(K), {-1, 0});
  for (int64_t n = 0; n < vg.B; ++n)
    for (size_t q = 0; q < lists[n].size(); ++q) where[lists[n][q]] = {n, q};
  at::parallel_for(0, K, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t n = where[k].first;
      if (n < 0) continue;
      const PasteGeom& q = g[k];
      const int64_t plane = int64_t(q.sh) * q.sw;
      acc_t* gk = gfa + k * 3 * plane;
      for (int64_t i = q.i0; i < q.i1; ++i) {
        const Tap tu = axis_tap(i, q.y1, q.sy, q.sh);
        const acc_t fu = tu.f;
        for (int64_t j = q.j0; j < q.j1; ++j) {
          const acc_t a = static_cast<acc_t>(mask_alpha(q, i, j, mk, ib));
          if (a == acc_t(0)) continue;
          const acc_t w = a * transmit<acc_t>(g, lists[n], where[k].second + 1, i, j, mk, ib);
          if (w == acc_t(0)) continue;
          const Tap tv = axis_tap(j, q.x1, q.sx, q.sw);
          const acc_t fv = tv.f;
          const acc_t* pg = grad + vg.at(n, i, j);
          for (int c = 0; c < 3; ++c) {
            const acc_t gv = pg[c * vg.sC] * w * static_cast<acc_t>(s[c]);
            acc_t* p = gk + c * plane;
            p[int64_t(tu.a) * q.sw + tv.a] += gv * (1 - fu) * (1 - fv);
            p[int64_t(tu.a) * q.sw + tv.b] += gv * (1 - fu) * fv;
            p[int64_t(tu.b) * q.sw + tv.a] += gv * fu * (1 - fv);
            p[int64_t(tu.b) * q.sw + tv.b] += gv * fu * fv;
          }
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> face_paste_backward_cpu(const at::Tensor& grad, const at::Tensor& faces_in,
                                                           const at::Tensor& rois, at::ArrayRef<double> std_,
                                                           c10::string_view mask, double feather,
                                                           bool channels_last) {
  TORCH_CHECK_VALUE(grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble,
                    "grad must be float32 or float64, got ", grad.scalar_type());
  check_frames(grad, channels_last, "grad");
  const auto s = check_triple(std_, "std", true);
  const int32_t mk = parse_mask(mask);
  const float ib = inv_band(feather);
  const auto bhw = frame_bhw(grad, channels_last);
  const at::Tensor rh = host_rois(rois, grad.device(), bhw[0]);
  const int64_t K = rh.size(0);
  check_faces(faces_in, grad, K);
  at::Tensor gfr = cpu::copy_frames(grad);
  at::Tensor gfa = at::zeros(faces_in.sizes(), faces_in.options());
  if (K == 0) return {gfr, gfa};
  const at::Tensor gc = grad.contiguous();
  const at::Tensor geoms = plan_paste(rh, bhw[1], bhw[2], faces_in.size(2), faces_in.size(3));
  const FrameView vg = frame_view(gc, channels_last), vf = frame_view(gfr, channels_last);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "face_paste_backward_cpu", [&] {
    paste_backward_impl<scalar_t>(gc.data_ptr<scalar_t>(), vg, gfr.data_ptr<scalar_t>(), vf,
                                  gfa.data_ptr<scalar_t>(), geoms_ptr(geoms), K, s, mk, ib);
  });
  return {gfr, gfa};
}

}  // namespace
}  // namespace face
}  // namespace anonface

TORCH_LIBRARY_IMPL(anonface, CPU, m) {
  m.impl("face_paste", &anonface::face::face_paste_cpu);
  m.impl("face_paste_", &anonface::face::face_paste_inplace_cpu);
  m.impl("_face_paste_backward", &anonface::face::face_paste_backward_cpu);
}
