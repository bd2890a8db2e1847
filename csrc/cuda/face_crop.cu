// face_crop on CUDA: ((roi_align(frames, aligned=True, sampling_ratio=-1) [/ 255]) - mean) / std
// as [K, 3, Sh, Sw] straight from either frame layout (one thread per output pixel), and its
// backward (the same weights scattered into zero frames with atomics).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cuda/face_cuda.cuh"

namespace anonface {
namespace face {
namespace {

at::Tensor face_crop_cuda(const at::Tensor& frames, const at::Tensor& rois, at::IntArrayRef size,
                          at::ArrayRef<double> mean, at::ArrayRef<double> std_, bool channels_last) {
  c10::cuda::CUDAGuard guard(frames.device());
  const CropCall c = prepare_crop(frames, rois, size, mean, std_, channels_last);
  at::Tensor out = at::empty({c.K, 3, c.sh, c.sw}, frames.options().dtype(c.acc));
  if (c.K == 0) return out;
  const CropPlan plan = plan_crop(c.rois, c.sh, c.sw, c.bhw[1], c.bhw[2], c.acc).to(frames.device());
  const FrameView v = frame_view(frames, channels_last);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  dispatch_frames(frames.scalar_type(), "face_crop", [&](auto s, auto a) {
    using scalar_t = decltype(s);
    using acc_t = decltype(a);
    cuda::launch_crop<scalar_t, acc_t>(frames.data_ptr<scalar_t>(), v, plan, c.sh, c.sw,
                                       crop_norm<scalar_t, acc_t>(c), out.data_ptr<acc_t>(), stream);
  });
  return out;
}

template <class acc_t>
__global__ void crop_backward_kernel(const acc_t* __restrict__ g, FrameView v,
                                     const int32_t* __restrict__ frame, const int32_t* __restrict__ ys,
                                     const int32_t* __restrict__ yl, const int32_t* __restrict__ xs,
                                     const int32_t* __restrict__ xl, const acc_t* __restrict__ wy,
                                     const acc_t* __restrict__ wx, int64_t Ly, int64_t Lx, int64_t K,
                                     int64_t sh, int64_t sw, acc_t i0, acc_t i1, acc_t i2,
                                     acc_t* __restrict__ gf) {
  const int64_t total = K * sh * sw, plane = sh * sw;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = t / plane, r = t % plane, ph = r / sw, pw = r % sw;
    const int64_t n = frame[k];
    if (n < 0) continue;
    const int64_t y0 = ys[k * sh + ph], ny = yl[k * sh + ph];
    const int64_t x0 = xs[k * sw + pw], nx = xl[k * sw + pw];
    const acc_t* wyp = wy + (k * sh + ph) * Ly;
    const acc_t* wxp = wx + (k * sw + pw) * Lx;
    const int64_t o = k * 3 * plane + ph * sw + pw;
    const acc_t g0 = g[o] * i0, g1 = g[o + plane] * i1, g2 = g[o + 2 * plane] * i2;
    for (int64_t ia = 0; ia < ny; ++ia) {
      acc_t* row = gf + v.at(n, y0 + ia, x0);
      for (int64_t ib = 0; ib < nx; ++ib) {
        const acc_t w = wyp[ia] * wxp[ib];
        if (w == acc_t(0)) continue;
        acc_t* px = row + ib * v.sW;
        atomicAdd(px, w * g0);
        atomicAdd(px + v.sC, w * g1);
        atomicAdd(px + 2 * v.sC, w * g2);
      }
    }
  }
}

at::Tensor face_crop_backward_cuda(const at::Tensor& grad_in, const at::Tensor& rois,
                                   at::IntArrayRef frames_shape, at::ArrayRef<double> std_,
                                   bool channels_last) {
  TORCH_CHECK_VALUE(frames_shape.size() == 4, "frames_shape must have 4 values, got ", frames_shape);
  TORCH_CHECK_VALUE(grad_in.dim() == 4 && grad_in.size(1) == 3 &&
                        (grad_in.scalar_type() == at::kFloat || grad_in.scalar_type() == at::kDouble),
                    "grad must be float32/float64 [K, 3, Sh, Sw], got ", grad_in.scalar_type(), " ",
                    grad_in.sizes());
  const auto s = check_triple(std_, "std", true);
  c10::cuda::CUDAGuard guard(grad_in.device());
  at::Tensor gf = at::zeros(frames_shape, grad_in.options());
  check_frames(gf, channels_last, "frames_shape");
  const auto bhw = frame_bhw(gf, channels_last);
  const at::Tensor rh = host_rois(rois, grad_in.device(), bhw[0]);
  TORCH_CHECK_VALUE(grad_in.size(0) == rh.size(0), "grad must have K=", rh.size(0), " crops, got ",
                    grad_in.size(0));
  const int64_t K = rh.size(0);
  if (K == 0) return gf;
  const at::Tensor g = grad_in.contiguous();
  const int64_t sh = g.size(2), sw = g.size(3);
  const CropPlan p = plan_crop(rh, sh, sw, bhw[1], bhw[2], g.scalar_type()).to(g.device());
  const FrameView v = frame_view(gf, channels_last);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "face_crop_backward_cuda", [&] {
    crop_backward_kernel<scalar_t><<<cuda::blocks_for(K * sh * sw), cuda::kThreads, 0, stream>>>(
        g.data_ptr<scalar_t>(), v, p.frame.data_ptr<int32_t>(), p.ystart.data_ptr<int32_t>(),
        p.ylen.data_ptr<int32_t>(), p.xstart.data_ptr<int32_t>(), p.xlen.data_ptr<int32_t>(),
        p.wy.data_ptr<scalar_t>(), p.wx.data_ptr<scalar_t>(), p.Ly, p.Lx, K, sh, sw,
        scalar_t(1) / scalar_t(s[0]), scalar_t(1) / scalar_t(s[1]), scalar_t(1) / scalar_t(s[2]),
        gf.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return gf;
}

}  // namespace
}  // namespace face
}  // namespace anonface

TORCH_LIBRARY_IMPL(anonface, CUDA, m) {
  m.impl("face_crop", &anonface::face::face_crop_cuda);
  m.impl("_face_crop_backward", &anonface::face::face_crop_backward_cuda);
}
