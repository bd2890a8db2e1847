// face_modify on the CPU: crop + hand-crafted modification + paste fused in one op. Each box's
// content comes from the input frames: pixelate (per-cell means of the box's pixels), blur
// (Gaussian on a G x G roi_align grid of the box, replicate border, sampled back bilinearly),
// solid (a grey level) or noise (counter-based, keyed by seed/frame/row/column/channel); then
// every box is blended with the paste mask, in order.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>

#include "cpu/face_cpu.h"

namespace anonface {
namespace face {
namespace {

// Per-cell means [K, 3, cells, cells] (double sums: exact for uint8).
template <class scalar_t, class acc_t>
void cell_means(const scalar_t* f, const FrameView& v, const PasteGeom* g, const int32_t* bounds, int64_t K,
                int32_t cells, acc_t* out) {
  const int64_t nb = cells + 1;
  int64_t pixels = 0;
  for (int64_t k = 0; k < K; ++k) pixels += int64_t(g[k].i1 - g[k].i0) * (g[k].j1 - g[k].j0);
  const int64_t grain = pixels < 32768 ? K * cells : 1;
  at::parallel_for(0, K * cells, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t k = t / cells, cy = t % cells;
      if (g[k].n < 0) continue;
      const int32_t* rb = bounds + (k * 2) * nb;
      const int32_t* cb = bounds + (k * 2 + 1) * nb;
      for (int64_t cx = 0; cx < cells; ++cx) {
        double s0 = 0, s1 = 0, s2 = 0;
        for (int64_t i = rb[cy]; i < rb[cy + 1]; ++i)
          for (int64_t j = cb[cx]; j < cb[cx + 1]; ++j) {
            const scalar_t* p = f + v.at(g[k].n, i, j);
            s0 += static_cast<double>(p[0]);
            s1 += static_cast<double>(p[v.sC]);
            s2 += static_cast<double>(p[2 * v.sC]);
          }
        const double cnt = std::max<double>(1.0, double(rb[cy + 1] - rb[cy]) * double(cb[cx + 1] - cb[cx]));
        const int64_t o = ((k * 3) * cells + cy) * cells + cx, plane = int64_t(cells) * cells;
        out[o] = static_cast<acc_t>(s0 / cnt);
        out[o + plane] = static_cast<acc_t>(s1 / cnt);
        out[o + 2 * plane] = static_cast<acc_t>(s2 / cnt);
      }
    }
  });
}

// Separable Gaussian on [K, 3, G, G] in place, replicate border: along rows (height), then columns.
template <class acc_t>
void blur_grids(acc_t* grid, int64_t K, int64_t G, const acc_t* taps, int64_t radius) {
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, G * G * (2 * radius + 1)));
  at::parallel_for(0, K * 3, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> tmp(G * G);
    for (int64_t t = begin; t < end; ++t) {
      acc_t* p = grid + t * G * G;
      for (int64_t y = 0; y < G; ++y)
        for (int64_t x = 0; x < G; ++x) {
          acc_t a = 0;
          for (int64_t d = -radius; d <= radius; ++d) {
            const int64_t yy = std::min<int64_t>(std::max<int64_t>(y + d, 0), G - 1);
            a += taps[d + radius] * p[yy * G + x];
          }
          tmp[y * G + x] = a;
        }
      for (int64_t y = 0; y < G; ++y)
        for (int64_t x = 0; x < G; ++x) {
          acc_t a = 0;
          for (int64_t d = -radius; d <= radius; ++d) {
            const int64_t xx = std::min<int64_t>(std::max<int64_t>(x + d, 0), G - 1);
            a += taps[d + radius] * tmp[y * G + xx];
          }
          p[y * G + x] = a;
        }
    }
  });
}

template <class scalar_t, class acc_t>
void modify_impl(const at::Tensor& frames, at::Tensor& out, bool cl, const at::Tensor& rh, int32_t method,
                 double strength, int32_t mk, float ib, uint64_t seed) {
  const auto bhw = frame_bhw(frames, cl);
  const int64_t K = rh.size(0);
  const FrameView vin = frame_view(frames, cl), vout = frame_view(out, cl);
  const scalar_t* f = frames.data_ptr<scalar_t>();
  // strength is in 0-255 units; float frames are in [0, 1] (computed in double, as the reference)
  const double unit = std::is_same<scalar_t, uint8_t>::value ? 1.0 : 1.0 / 255.0;
  Source<acc_t> src{};
  at::Tensor data, geoms;
  const auto acc = acc_type(frames.scalar_type());
  if (method == kCells) {
    const int32_t cells = static_cast<int32_t>(std::min(std::max(std::nearbyint(strength), 1.0), 4096.0));
    geoms = plan_paste(rh, bhw[1], bhw[2], cells, cells);
    const at::Tensor bounds = plan_cells(geoms, cells);
    data = at::zeros({K, 3, cells, cells}, frames.options().dtype(acc));
    cell_means<scalar_t, acc_t>(f, vin, geoms_ptr(geoms), bounds.data_ptr<int32_t>(), K, cells,
                                data.data_ptr<acc_t>());
    src.kind = kCells;
    src.data = data.data_ptr<acc_t>();
  } else if (method == kFace) {  // blur
    const int64_t G = blur_grid(strength);
    geoms = plan_paste(rh, bhw[1], bhw[2], G, G);
    const CropPlan plan = plan_crop(rh, G, G, bhw[1], bhw[2], acc, /*replicate=*/true);
    data = at::empty({K, 3, G, G}, frames.options().dtype(acc));
    cpu::crop<scalar_t, acc_t>(f, vin, plan, G, G, Norm<acc_t>{{0, 0, 0}, {1, 1, 1}, 1},
                               data.data_ptr<acc_t>());
    const at::Tensor taps = gaussian_taps(strength * static_cast<double>(G), acc);
    blur_grids<acc_t>(data.data_ptr<acc_t>(), K, G, taps.data_ptr<acc_t>(), (taps.numel() - 1) / 2);
    src.kind = kFace;
    src.data = data.data_ptr<acc_t>();
    for (int c = 0; c < 3; ++c) src.mean[c] = 0, src.stdv[c] = 1;
    src.scale = 1;
  } else {
    geoms = plan_paste(rh, bhw[1], bhw[2], 1, 1);
    src.kind = method;
    src.solid = static_cast<acc_t>(strength * unit);
    src.sigma = static_cast<acc_t>(strength * unit);
    src.inv_sd = static_cast<acc_t>(noise_inv_sd());
    src.seed = seed;
  }
  cpu::paste<scalar_t, acc_t>(f, vin, out.data_ptr<scalar_t>(), vout, geoms_ptr(geoms), K, src, mk, ib);
}

}  // namespace

int32_t parse_method(c10::string_view method) {
  if (method == "pixelate") return kCells;
  if (method == "blur") return kFace;
  if (method == "solid") return kSolid;
  if (method == "noise") return kNoise;
  TORCH_CHECK_VALUE(false, "method must be one of 'pixelate', 'blur', 'solid', 'noise', got '",
                    std::string(method), "'");
  return kSolid;
}

void check_strength(int32_t method, double strength) {
  if (method == kCells) {
    TORCH_CHECK_VALUE(strength >= 1.0, "strength for pixelate (cells per side) must be >= 1, got ", strength);
  } else if (method == kFace) {
    TORCH_CHECK_VALUE(strength > 0.0 && std::isfinite(strength),
                      "strength for blur (sigma / box size) must be > 0, got ", strength);
  } else if (method == kNoise) {
    TORCH_CHECK_VALUE(strength >= 0.0, "strength for noise (sigma, 0-255 units) must be >= 0, got ",
                      strength);
  } else {
    TORCH_CHECK_VALUE(!std::isnan(strength), "strength for solid (grey level) must be a number, got ",
                      strength);
  }
}

namespace {

at::Tensor modify_cpu(const at::Tensor& frames, const at::Tensor& rois, c10::string_view method,
                      double strength, c10::string_view mask, double feather, int64_t seed,
                      bool channels_last, bool inplace) {
  return modify_frames(frames, rois, method, strength, mask, feather, channels_last, inplace,
                       cpu::copy_frames, [&](auto s, auto a, const ModifyCall& c, at::Tensor& out) {
                         modify_impl<decltype(s), decltype(a)>(frames, out, channels_last, c.rois, c.method,
                                                               strength, c.mask, c.inv_band,
                                                               static_cast<uint64_t>(seed));
                       });
}

at::Tensor face_modify_cpu(const at::Tensor& frames, const at::Tensor& rois, c10::string_view method,
                           double strength, c10::string_view mask, double feather, int64_t seed,
                           bool channels_last) {
  return modify_cpu(frames, rois, method, strength, mask, feather, seed, channels_last, false);
}

void face_modify_inplace_cpu(const at::Tensor& frames, const at::Tensor& rois, c10::string_view method,
                             double strength, c10::string_view mask, double feather, int64_t seed,
                             bool channels_last) {
  modify_cpu(frames, rois, method, strength, mask, feather, seed, channels_last, true);
}

}  // namespace
}  // namespace face
}  // namespace anonface

TORCH_LIBRARY_IMPL(anonface, CPU, m) {
  m.impl("face_modify", &anonface::face::face_modify_cpu);
  m.impl("face_modify_", &anonface::face::face_modify_inplace_cpu);
}
