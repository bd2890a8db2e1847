// face_paste on CUDA: every pixel whose centre lies in box k samples face k bilinearly,
// de-normalises it and is blended alpha * face + (1 - alpha) * frame, boxes in order (one thread
// per covered pixel blends all its boxes), uint8 rounded once; and the backward with respect to
// the frames (a product of (1 - alpha)) and the faces (atomics into the bilinear taps).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cuda/face_cuda.cuh"

namespace anonface {
namespace face {
namespace {

// Writes the pasted frames into `out` (a copy of `frames`, or `frames` itself: every pixel is
// read before it is written, by the same thread).
void paste_into(const at::Tensor& frames, at::Tensor& out, const at::Tensor& faces_in, const at::Tensor& rois,
                at::ArrayRef<double> mean, at::ArrayRef<double> std_, c10::string_view mask, double feather,
                bool channels_last, bool inplace) {
  c10::cuda::CUDAGuard guard(frames.device());
  const PasteCall c = prepare_paste(frames, faces_in, rois, mean, std_, mask, feather, channels_last);
  if (!inplace) out = cuda::copy_frames(frames);
  if (c.K == 0) return;
  const at::Tensor faces = faces_in.contiguous();
  const at::Tensor gh = plan_paste(c.rois, c.bhw[1], c.bhw[2], faces.size(2), faces.size(3));
  const at::Tensor gd = gh.to(frames.device());
  const FrameView vin = frame_view(frames, channels_last), vout = frame_view(out, channels_last);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  dispatch_frames(frames.scalar_type(), "face_paste", [&](auto s, auto a) {
    using scalar_t = decltype(s);
    using acc_t = decltype(a);
    cuda::launch_paste<scalar_t, acc_t>(frames.data_ptr<scalar_t>(), vin, out.data_ptr<scalar_t>(), vout, gh,
                                        gd, face_source<scalar_t, acc_t>(c, faces.data_ptr<acc_t>()), c.mask,
                                        c.inv_band, stream);
  });
}

at::Tensor face_paste_cuda(const at::Tensor& frames, const at::Tensor& faces, const at::Tensor& rois,
                           at::ArrayRef<double> mean, at::ArrayRef<double> std_, c10::string_view mask,
                           double feather, bool channels_last) {
  at::Tensor out;
  paste_into(frames, out, faces, rois, mean, std_, mask, feather, channels_last, false);
  return out.defined() ? out : frames.clone();
}

void face_paste_inplace_cuda(const at::Tensor& frames, const at::Tensor& faces, const at::Tensor& rois,
                             at::ArrayRef<double> mean, at::ArrayRef<double> std_, c10::string_view mask,
                             double feather, bool channels_last) {
  TORCH_CHECK_VALUE(frames.is_non_overlapping_and_dense(),
                    "frames must not overlap in memory (e.g. expanded) for an in-place paste");
  at::Tensor out = frames;
  paste_into(frames, out, faces, rois, mean, std_, mask, feather, channels_last, true);
}

// grad_frames = grad * prod over covering boxes of (1 - alpha); `gfr` holds a copy of grad.
template <class acc_t>
__global__ void paste_backward_frames_kernel(acc_t* __restrict__ gfr, FrameView vf,
                                             const PasteGeom* __restrict__ g, int64_t K, int32_t mk,
                                             float ib) {
  for (int64_t k = blockIdx.y; k < K; k += gridDim.y) {
    const PasteGeom gk = g[k];
    if (gk.n < 0) continue;
    const int64_t w = gk.j1 - gk.j0, count = int64_t(gk.i1 - gk.i0) * w;
    for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < count;
         t += int64_t(gridDim.x) * blockDim.x) {
      const int64_t i = gk.i0 + t / w, j = gk.j0 + t % w;
      if (cuda::owned_by_earlier(g, k, gk.n, i, j)) continue;
      acc_t prod = 1;
      for (int64_t q = k; q < K; ++q)
        if (covers(g[q], gk.n, i, j))
          prod = rmul(prod, rsub(acc_t(1), static_cast<acc_t>(mask_alpha(g[q], i, j, mk, ib))));
      acc_t* p = gfr + vf.at(gk.n, i, j);
      for (int c = 0; c < 3; ++c) p[c * vf.sC] = rmul(p[c * vf.sC], prod);
    }
  }
}

// grad_faces[k] += grad * alpha_k * prod of later (1 - alpha) * std, over the bilinear taps.
template <class acc_t>
__global__ void paste_backward_faces_kernel(const acc_t* __restrict__ grad, FrameView vg,
                                            acc_t* __restrict__ gfa, const PasteGeom* __restrict__ g,
                                            int64_t K, acc_t s0, acc_t s1, acc_t s2, int32_t mk, float ib) {
  for (int64_t k = blockIdx.y; k < K; k += gridDim.y) {
    const PasteGeom gk = g[k];
    if (gk.n < 0) continue;
    const int64_t w = gk.j1 - gk.j0, count = int64_t(gk.i1 - gk.i0) * w;
    const int64_t plane = int64_t(gk.sh) * gk.sw;
    for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < count;
         t += int64_t(gridDim.x) * blockDim.x) {
      const int64_t i = gk.i0 + t / w, j = gk.j0 + t % w;
      acc_t a = static_cast<acc_t>(mask_alpha(gk, i, j, mk, ib));
      if (a == acc_t(0)) continue;
      for (int64_t q = k + 1; q < K; ++q)
        if (covers(g[q], gk.n, i, j))
          a = rmul(a, rsub(acc_t(1), static_cast<acc_t>(mask_alpha(g[q], i, j, mk, ib))));
      if (a == acc_t(0)) continue;
      const Tap tu = axis_tap(i, gk.y1, gk.sy, gk.sh);
      const Tap tv = axis_tap(j, gk.x1, gk.sx, gk.sw);
      const acc_t fu = tu.f, fv = tv.f;
      const acc_t* pg = grad + vg.at(gk.n, i, j);
      const acc_t sc[3] = {s0, s1, s2};
      for (int c = 0; c < 3; ++c) {
        const acc_t gv = pg[c * vg.sC] * a * sc[c];
        acc_t* p = gfa + (k * 3 + c) * plane;
        atomicAdd(p + int64_t(tu.a) * gk.sw + tv.a, gv * (1 - fu) * (1 - fv));
        atomicAdd(p + int64_t(tu.a) * gk.sw + tv.b, gv * (1 - fu) * fv);
        atomicAdd(p + int64_t(tu.b) * gk.sw + tv.a, gv * fu * (1 - fv));
        atomicAdd(p + int64_t(tu.b) * gk.sw + tv.b, gv * fu * fv);
      }
    }
  }
}

std::tuple<at::Tensor, at::Tensor> face_paste_backward_cuda(const at::Tensor& grad,
                                                            const at::Tensor& faces_in,
                                                            const at::Tensor& rois, at::ArrayRef<double> std_,
                                                            c10::string_view mask, double feather,
                                                            bool channels_last) {
  TORCH_CHECK_VALUE(grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble,
                    "grad must be float32 or float64, got ", grad.scalar_type());
  check_frames(grad, channels_last, "grad");
  const auto s = check_triple(std_, "std", true);
  const int32_t mk = parse_mask(mask);
  const float ib = inv_band(feather);
  c10::cuda::CUDAGuard guard(grad.device());
  const auto bhw = frame_bhw(grad, channels_last);
  const at::Tensor rh = host_rois(rois, grad.device(), bhw[0]);
  const int64_t K = rh.size(0);
  check_faces(faces_in, grad, K);
  at::Tensor gfr = cuda::copy_frames(grad);
  at::Tensor gfa = at::zeros(faces_in.sizes(), faces_in.options());
  if (K == 0) return {gfr, gfa};
  const at::Tensor gc = grad.contiguous();
  const at::Tensor gh = plan_paste(rh, bhw[1], bhw[2], faces_in.size(2), faces_in.size(3));
  const at::Tensor gd = gh.to(grad.device());
  const FrameView vg = frame_view(gc, channels_last), vf = frame_view(gfr, channels_last);
  const dim3 grid = cuda::box_grid(gh);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "face_paste_backward_cuda", [&] {
    paste_backward_frames_kernel<scalar_t>
        <<<grid, cuda::kThreads, 0, stream>>>(gfr.data_ptr<scalar_t>(), vf, geoms_ptr(gd), K, mk, ib);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    paste_backward_faces_kernel<scalar_t><<<grid, cuda::kThreads, 0, stream>>>(
        gc.data_ptr<scalar_t>(), vg, gfa.data_ptr<scalar_t>(), geoms_ptr(gd), K, scalar_t(s[0]),
        scalar_t(s[1]), scalar_t(s[2]), mk, ib);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {gfr, gfa};
}

}  // namespace
}  // namespace face
}  // namespace anonface

TORCH_LIBRARY_IMPL(anonface, CUDA, m) {
  m.impl("face_paste", &anonface::face::face_paste_cuda);
  m.impl("face_paste_", &anonface::face::face_paste_inplace_cuda);
  m.impl("_face_paste_backward", &anonface::face::face_paste_backward_cuda);
}
