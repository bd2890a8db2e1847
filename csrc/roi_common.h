// Shared math of the RoI pooling ops (roi_align, roi_pool), used by the CPU and CUDA kernels.
//
// Convention (identical to torchvision.ops): rois are rows (batch_index, x1, y1, x2, y2) in input
// pixel coordinates scaled by spatial_scale. For roi_align, `aligned` shifts the box by -0.5 so that
// pixel centres sit at integer + 0.5; a sample outside [-1, H] x [-1, W] contributes zero; the
// sampling grid per bin is sampling_ratio x sampling_ratio, or ceil(bin size) when sampling_ratio <= 0.
// Rois with non-finite coordinates or an out-of-range batch index produce zeros (the Python and C++
// entry points reject out-of-range indices before the kernels run; the kernels never read outside).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define ANONFACE_HD __host__ __device__ __forceinline__
#else
#define ANONFACE_HD inline
#endif

namespace anonface {

using std::ceil;
using std::floor;
using std::isfinite;
using std::round;

// Largest per-axis sampling grid we allow. Only reached by boxes that are thousands of times larger
// than the feature map; it keeps the integer conversion defined.
constexpr int kMaxSamplingGrid = 1 << 12;

template <typename acc_t>
struct AlignRoi {
  int64_t batch;  // -1 when the roi is to produce zeros
  acc_t start_h, start_w, bin_h, bin_w;
  int grid_h, grid_w;
  acc_t count;
};

template <typename acc_t>
ANONFACE_HD bool roi_finite(const acc_t* r) {
  return isfinite(r[0]) && isfinite(r[1]) && isfinite(r[2]) && isfinite(r[3]) && isfinite(r[4]);
}

template <typename acc_t>
ANONFACE_HD int clamp_grid(acc_t v) {
  if (!(v >= acc_t(1))) return 1;  // also catches NaN
  if (v > acc_t(kMaxSamplingGrid)) return kMaxSamplingGrid;
  return static_cast<int>(v);
}

template <typename acc_t>
ANONFACE_HD AlignRoi<acc_t> make_align_roi(const acc_t* r, int64_t batch_size, acc_t spatial_scale,
                                           int pooled_h, int pooled_w, int sampling_ratio, bool aligned) {
  AlignRoi<acc_t> a;
  a.batch = -1;
  a.start_h = a.start_w = a.bin_h = a.bin_w = acc_t(0);
  a.grid_h = a.grid_w = 1;
  a.count = acc_t(1);
  if (!roi_finite(r)) return a;
  int64_t b = static_cast<int64_t>(r[0]);
  if (b < 0 || b >= batch_size) return a;
  const acc_t offset = aligned ? acc_t(0.5) : acc_t(0);
  acc_t x1 = r[1] * spatial_scale - offset;
  acc_t y1 = r[2] * spatial_scale - offset;
  acc_t x2 = r[3] * spatial_scale - offset;
  acc_t y2 = r[4] * spatial_scale - offset;
  acc_t roi_w = x2 - x1;
  acc_t roi_h = y2 - y1;
  if (!aligned) {  // legacy behaviour: force malformed rois to 1x1
    roi_w = roi_w > acc_t(1) ? roi_w : acc_t(1);
    roi_h = roi_h > acc_t(1) ? roi_h : acc_t(1);
  }
  a.batch = b;
  a.start_h = y1;
  a.start_w = x1;
  a.bin_h = roi_h / pooled_h;
  a.bin_w = roi_w / pooled_w;
  a.grid_h = sampling_ratio > 0 ? sampling_ratio : clamp_grid(ceil(roi_h / pooled_h));
  a.grid_w = sampling_ratio > 0 ? sampling_ratio : clamp_grid(ceil(roi_w / pooled_w));
  // torchvision: count = max(grid_h * grid_w, 1); a negative-size aligned roi gives grid 0 there,
  // which the clamp above turns into 1 (same result: its samples are all zero-weight or skipped).
  if (sampling_ratio <= 0) {
    acc_t gh = ceil(roi_h / pooled_h), gw = ceil(roi_w / pooled_w);
    if (!(gh >= acc_t(1)) || !(gw >= acc_t(1))) {
      // empty grid in torchvision: output is 0
      a.batch = -1;
      return a;
    }
  }
  a.count = static_cast<acc_t>(a.grid_h) * static_cast<acc_t>(a.grid_w);
  return a;
}

// Bilinear taps of one sample at (y, x) in an H x W map: four flat offsets and weights.
// Returns false when the sample lies outside [-1, H] x [-1, W] (it contributes zero).
template <typename acc_t>
ANONFACE_HD bool bilinear_taps(acc_t y, acc_t x, int64_t height, int64_t width, int64_t* idx, acc_t* w) {
  if (y < acc_t(-1) || y > acc_t(height) || x < acc_t(-1) || x > acc_t(width)) return false;
  if (y <= acc_t(0)) y = acc_t(0);
  if (x <= acc_t(0)) x = acc_t(0);
  int64_t y_lo = static_cast<int64_t>(y), x_lo = static_cast<int64_t>(x);
  int64_t y_hi, x_hi;
  if (y_lo >= height - 1) {
    y_hi = y_lo = height - 1;
    y = static_cast<acc_t>(y_lo);
  } else {
    y_hi = y_lo + 1;
  }
  if (x_lo >= width - 1) {
    x_hi = x_lo = width - 1;
    x = static_cast<acc_t>(x_lo);
  } else {
    x_hi = x_lo + 1;
  }
  acc_t ly = y - static_cast<acc_t>(y_lo), lx = x - static_cast<acc_t>(x_lo);
  acc_t hy = acc_t(1) - ly, hx = acc_t(1) - lx;
  idx[0] = y_lo * width + x_lo;
  idx[1] = y_lo * width + x_hi;
  idx[2] = y_hi * width + x_lo;
  idx[3] = y_hi * width + x_hi;
  w[0] = hy * hx;
  w[1] = hy * lx;
  w[2] = ly * hx;
  w[3] = ly * lx;
  return true;
}

// One bin of roi_pool: [h0, h1) x [w0, w1) of the map (empty when h1 <= h0 or w1 <= w0).
struct PoolBin {
  int64_t batch;  // -1: zeros
  int64_t h0, h1, w0, w1;
};

template <typename acc_t>
ANONFACE_HD PoolBin make_pool_bin(const acc_t* r, int64_t batch_size, acc_t spatial_scale, int pooled_h,
                                  int pooled_w, int ph, int pw, int64_t height, int64_t width) {
  PoolBin bin{-1, 0, 0, 0, 0};
  if (!roi_finite(r)) return bin;
  int64_t b = static_cast<int64_t>(r[0]);
  if (b < 0 || b >= batch_size) return bin;
  // Coordinates are rounded half away from zero, as std::round does.
  acc_t sw = round(r[1] * spatial_scale), sh = round(r[2] * spatial_scale);
  acc_t ew = round(r[3] * spatial_scale), eh = round(r[4] * spatial_scale);
  // Clamp before converting so absurd boxes stay defined.
  const acc_t big = acc_t(1) * static_cast<acc_t>(1 << 30);
  sw = sw < -big ? -big : (sw > big ? big : sw);
  sh = sh < -big ? -big : (sh > big ? big : sh);
  ew = ew < -big ? -big : (ew > big ? big : ew);
  eh = eh < -big ? -big : (eh > big ? big : eh);
  int64_t start_w = static_cast<int64_t>(sw), start_h = static_cast<int64_t>(sh);
  int64_t roi_w = static_cast<int64_t>(ew) - start_w + 1;
  int64_t roi_h = static_cast<int64_t>(eh) - start_h + 1;
  if (roi_w < 1) roi_w = 1;
  if (roi_h < 1) roi_h = 1;
  acc_t bin_h = static_cast<acc_t>(roi_h) / static_cast<acc_t>(pooled_h);
  acc_t bin_w = static_cast<acc_t>(roi_w) / static_cast<acc_t>(pooled_w);
  int64_t h0 = static_cast<int64_t>(floor(static_cast<acc_t>(ph) * bin_h)) + start_h;
  int64_t h1 = static_cast<int64_t>(ceil(static_cast<acc_t>(ph + 1) * bin_h)) + start_h;
  int64_t w0 = static_cast<int64_t>(floor(static_cast<acc_t>(pw) * bin_w)) + start_w;
  int64_t w1 = static_cast<int64_t>(ceil(static_cast<acc_t>(pw + 1) * bin_w)) + start_w;
  auto clampi = [](int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); };
  bin.batch = b;
  bin.h0 = clampi(h0, 0, height);
  bin.h1 = clampi(h1, 0, height);
  bin.w0 = clampi(w0, 0, width);
  bin.w1 = clampi(w1, 0, width);
  return bin;
}

}  // namespace anonface
