// Shared host/device math of the fused face kernels (face_crop, face_paste, face_modify).
//
// Contract (README, Fused face kernels; anonface/ops/face_reference.py is the executable version):
//  * rois [K, 5] = (frame_index, x1, y1, x2, y2), pixel-corner coordinates; pixel (i, j) has its
//    centre at (j + 0.5, i + 0.5); box k covers pixels whose centre is in [x1, x2) x [y1, y2).
//  * Box geometry is planned on the host in double (face_plan.h) and the per-pixel position /
//    mask math below runs in float with correctly rounded operations only (no FMA contraction:
//    __fmul_rn / __fadd_rn on the device), in the same order as the reference, so the CPU and
//    CUDA kernels compute identical positions, masks and noise.
#pragma once

#include <cmath>
#include <cstdint>
#if !defined(__CUDA_ARCH__) && (defined(__SSE2__) || defined(__x86_64__))
#include <emmintrin.h>
#define AF_HAVE_SSE2 1
#endif

#if defined(__CUDACC__)
#define AF_HD __host__ __device__ __forceinline__
#else
#define AF_HD inline
#endif

namespace anonface {
namespace face {

enum MaskKind : int32_t { kEllipse = 0, kBox = 1 };
enum SourceKind : int32_t { kFace = 0, kCells = 1, kSolid = 2, kNoise = 3 };

constexpr double kCoordLimit = 16777216.0;  // 2^24: coordinates are clamped to +-this
constexpr int64_t kNoiseSumMean = 131070;   // mean of the sum of four 16-bit words

// ---- correctly rounded arithmetic ---------------------------------------------------------
AF_HD float rmul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
AF_HD double rmul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
AF_HD float radd(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
AF_HD double radd(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
template <class T>
AF_HD T rsub(T a, T b) {
  return radd(a, -b);  // a - b == a + (-b) exactly
}
template <class T>
AF_HD T clampv(T v, T lo, T hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// ---- per-roi paste geometry (planned on the host) -----------------------------------------
struct PasteGeom {
  int32_t n;               // frame index; -1: the box is skipped (NaN)
  int32_t i0, i1, j0, j1;  // covered pixel rows [i0, i1) and columns [j0, j1), clipped
  int32_t sh, sw;          // texels (or cells) of the source per side
  float x1, y1;            // box corner
  float sy, sx;            // source texels per pixel: sh / h, sw / w
  float cx, cy, ia, ib;    // box centre and 2 / w, 2 / h (mask)
};

AF_HD bool covers(const PasteGeom& g, int32_t n, int64_t i, int64_t j) {
  return g.n == n && i >= g.i0 && i < g.i1 && j >= g.j0 && j < g.j1;
}

// Normalised mask coordinate of pixel index `idx` on one axis: (idx + 0.5 - centre) * 2 / size.
AF_HD float mask_coord(int64_t idx, float centre, float inv_half) {
  return rmul(rsub(radd(static_cast<float>(idx), 0.5f), centre), inv_half);
}

// alpha of the ellipse / box mask inscribed in the box; the soft band lies inside it.
AF_HD float alpha_from(float nx, float ny, int32_t mask, float inv_band) {
  float r;
  if (mask == kEllipse) {
    r = sqrtf(radd(rmul(ny, ny), rmul(nx, nx)));
  } else {
    r = fmaxf(fabsf(nx), fabsf(ny));
  }
  if (inv_band > 0.f) return clampv(rmul(rsub(1.f, r), inv_band), 0.f, 1.f);
  return r <= 1.f ? 1.f : 0.f;
}

AF_HD float mask_alpha(const PasteGeom& g, int64_t i, int64_t j, int32_t mask, float inv_band) {
  return alpha_from(mask_coord(j, g.cx, g.ia), mask_coord(i, g.cy, g.ib), mask, inv_band);
}

struct Tap {
  int32_t a, b;  // the two texels
  float f;       // weight of b
};

// Bilinear taps on a source axis of `out` texels for frame pixel `idx` (edges clamped).
AF_HD Tap axis_tap(int64_t idx, float lo, float scale, int32_t out) {
  float pos = rsub(rmul(rsub(radd(static_cast<float>(idx), 0.5f), lo), scale), 0.5f);
  pos = clampv(pos, 0.f, static_cast<float>(out - 1));
  int32_t a = static_cast<int32_t>(pos);
  if (a > out - 1) a = out - 1;
  const int32_t b = a + 1 < out ? a + 1 : out - 1;
  return {a, b, rsub(pos, static_cast<float>(a))};
}

// Pixelate cell of frame pixel `idx` along one axis.
AF_HD int32_t cell_index(int64_t idx, float lo, float scale, int32_t cells) {
  const float t = floorf(rmul(rsub(radd(static_cast<float>(idx), 0.5f), lo), scale));
  if (!(t >= 0.f)) return 0;
  if (t > static_cast<float>(cells - 1)) return cells - 1;
  return static_cast<int32_t>(t);
}

// ---- counter-based noise --------------------------------------------------------------------
AF_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Integer Irwin-Hall sample (sum of four 16-bit words minus its mean) keyed by
// (seed, frame, row, column, channel); times NOISE_INV_SD it is ~N(0, 1).
AF_HD int64_t noise_int(uint64_t seed, int64_t n, int64_t i, int64_t j, int64_t c) {
  uint64_t h = splitmix64(seed ^ (static_cast<uint64_t>(n + 1) * 0x9E3779B97F4A7C15ull));
  h = splitmix64(h ^ ((static_cast<uint64_t>(i) << 32) | static_cast<uint64_t>(j)));
  h = splitmix64(h + static_cast<uint64_t>(c));
  const int64_t s =
      static_cast<int64_t>((h & 0xFFFFull) + ((h >> 16) & 0xFFFFull) + ((h >> 32) & 0xFFFFull) + (h >> 48));
  return s - kNoiseSumMean;
}

// ---- what gets pasted ---------------------------------------------------------------------
template <class acc_t>
struct Source {
  int32_t kind;       // SourceKind
  const acc_t* data;  // kFace: [K, 3, sh, sw]; kCells: [K, 3, cells, cells]
  acc_t mean[3];      // kFace: value = (sample * std + mean) * scale
  acc_t stdv[3];
  acc_t scale;
  acc_t solid;   // kSolid grey
  acc_t sigma;   // kNoise sigma (frame units)
  acc_t inv_sd;  // kNoise: 1 / sd of the integer sample
  uint64_t seed;
};

// Where pixel index `idx` reads the source on one axis: bilinear taps (kFace) or the cell (kCells).
AF_HD Tap source_tap(int32_t kind, int64_t idx, float lo, float scale, int32_t n) {
  if (kind == kFace) return axis_tap(idx, lo, scale, n);
  if (kind == kCells) return {cell_index(idx, lo, scale, n), 0, 0.f};
  return {0, 0, 0.f};
}

// The value box k pastes at (i, j), given the source taps of its row (tu) and column (tv), for a
// source kind fixed at compile time (the CPU paste loop is instantiated per kind).
template <int32_t KIND, class acc_t>
AF_HD void source_value_kind(const Source<acc_t>& s, const PasteGeom& g, int64_t k, int64_t i, int64_t j,
                             const Tap& tu, const Tap& tv, const acc_t orig[3], acc_t out[3]) {
  if constexpr (KIND == kFace) {
    const acc_t fu = static_cast<acc_t>(tu.f), fv = static_cast<acc_t>(tv.f);
    const acc_t one = static_cast<acc_t>(1);
    for (int c = 0; c < 3; ++c) {
      const acc_t* p = s.data + (k * 3 + c) * static_cast<int64_t>(g.sh) * g.sw;
      const acc_t* ra = p + static_cast<int64_t>(tu.a) * g.sw;
      const acc_t* rb = p + static_cast<int64_t>(tu.b) * g.sw;
      const acc_t top = radd(rmul(rsub(one, fv), ra[tv.a]), rmul(fv, ra[tv.b]));
      const acc_t bot = radd(rmul(rsub(one, fv), rb[tv.a]), rmul(fv, rb[tv.b]));
      const acc_t v = radd(rmul(rsub(one, fu), top), rmul(fu, bot));
      out[c] = rmul(radd(rmul(v, s.stdv[c]), s.mean[c]), s.scale);
    }
  } else if constexpr (KIND == kCells) {
    for (int c = 0; c < 3; ++c)
      out[c] = s.data[((k * 3 + c) * g.sh + tu.a) * static_cast<int64_t>(g.sw) + tv.a];
  } else if constexpr (KIND == kSolid) {
    for (int c = 0; c < 3; ++c) out[c] = s.solid;
  } else {
    for (int c = 0; c < 3; ++c) {
      const acc_t z = rmul(static_cast<acc_t>(noise_int(s.seed, g.n, i, j, c)), s.inv_sd);
      out[c] = radd(orig[c], rmul(z, s.sigma));
    }
  }
}

// The same, for the kind the source holds.
template <class acc_t>
AF_HD void source_value_taps(const Source<acc_t>& s, const PasteGeom& g, int64_t k, int64_t i, int64_t j,
                             const Tap& tu, const Tap& tv, const acc_t orig[3], acc_t out[3]) {
  switch (s.kind) {
    case kFace:
      source_value_kind<kFace>(s, g, k, i, j, tu, tv, orig, out);
      return;
    case kCells:
      source_value_kind<kCells>(s, g, k, i, j, tu, tv, orig, out);
      return;
    case kSolid:
      source_value_kind<kSolid>(s, g, k, i, j, tu, tv, orig, out);
      return;
    default:
      source_value_kind<kNoise>(s, g, k, i, j, tu, tv, orig, out);
  }
}

template <class acc_t>
AF_HD void source_value(const Source<acc_t>& s, const PasteGeom& g, int64_t k, int64_t i, int64_t j,
                        const acc_t orig[3], acc_t out[3]) {
  const Tap tu = source_tap(s.kind, i, g.y1, g.sy, g.sh);
  const Tap tv = source_tap(s.kind, j, g.x1, g.sx, g.sw);
  source_value_taps(s, g, k, i, j, tu, tv, orig, out);
}

template <class acc_t>
AF_HD acc_t blend(acc_t alpha, acc_t value, acc_t prev) {
  return radd(rmul(alpha, value), rmul(rsub(static_cast<acc_t>(1), alpha), prev));
}

// Blend box k into the pixel (i, j) held in px[3]; orig[3] is the input frame's pixel.
template <class acc_t>
AF_HD void apply_box(const PasteGeom& g, int64_t k, int64_t i, int64_t j, const Source<acc_t>& s,
                     int32_t mask, float inv_band, const acc_t orig[3], acc_t px[3]) {
  const acc_t alpha = static_cast<acc_t>(mask_alpha(g, i, j, mask, inv_band));
  if (alpha == static_cast<acc_t>(0)) return;  // outside the mask: the pixel stays as it is
  acc_t value[3];
  source_value(s, g, k, i, j, orig, value);
  for (int c = 0; c < 3; ++c) px[c] = blend(alpha, value[c], px[c]);
}

// ---- value conversion ---------------------------------------------------------------------
template <class scalar_t>
struct Store {
  template <class acc_t>
  AF_HD static scalar_t from(acc_t v) {
    return static_cast<scalar_t>(v);
  }
};
template <>
struct Store<uint8_t> {
  // Round half to even after clamping; NaN (only from NaN faces) becomes 0. On x86 hosts
  // cvtss2si rounds with the current mode (nearest-even), exactly like rintf, without libm.
  AF_HD static uint8_t from(float v) {
    if (!(v == v)) return 0;
    v = clampv(v, 0.f, 255.f);
#if defined(AF_HAVE_SSE2)
    return static_cast<uint8_t>(_mm_cvtss_si32(_mm_set_ss(v)));
#else
    return static_cast<uint8_t>(rintf(v));
#endif
  }
  AF_HD static uint8_t from(double v) {
    if (!(v == v)) return 0;
    v = clampv(v, 0.0, 255.0);
#if defined(AF_HAVE_SSE2)
    return static_cast<uint8_t>(_mm_cvtsd_si32(_mm_set_sd(v)));
#else
    return static_cast<uint8_t>(rint(v));
#endif
  }
};

// Strided view of a frames tensor (either layout).
struct FrameView {
  int64_t B, H, W;
  int64_t sN, sC, sH, sW;
  AF_HD int64_t at(int64_t n, int64_t i, int64_t j) const { return n * sN + i * sH + j * sW; }
};

// The normalisation of a crop: (x / scale - mean[c]) / stdv[c]; scale is 255 for uint8 frames.
template <class acc_t>
struct Norm {
  acc_t mean[3];
  acc_t stdv[3];
  acc_t scale;
};

// One face_crop output pixel, all three channels: the separable roi_align sum over the taps
// (rows y0..y0+ny with weights wy, columns x0..x0+nx with weights wx) of frame n, normalised;
// written to o[0], o[plane], o[2 * plane]. The CPU and CUDA kernels both compute it here.
template <class scalar_t, class acc_t>
AF_HD void crop_pixel(const scalar_t* f, const FrameView& v, int64_t n, int64_t y0, int64_t ny, int64_t x0,
                      int64_t nx, const acc_t* wy, const acc_t* wx, const Norm<acc_t>& nm, acc_t* o,
                      int64_t plane) {
  acc_t a0 = 0, a1 = 0, a2 = 0;
  for (int64_t ia = 0; ia < ny; ++ia) {
    const scalar_t* row = f + v.at(n, y0 + ia, x0);
    acc_t r0 = 0, r1 = 0, r2 = 0;
    for (int64_t ib = 0; ib < nx; ++ib) {
      const scalar_t* px = row + ib * v.sW;
      const acc_t w = wx[ib];
      r0 += w * static_cast<acc_t>(px[0]);
      r1 += w * static_cast<acc_t>(px[v.sC]);
      r2 += w * static_cast<acc_t>(px[2 * v.sC]);
    }
    const acc_t w = wy[ia];
    a0 += w * r0;
    a1 += w * r1;
    a2 += w * r2;
  }
  o[0] = (a0 / nm.scale - nm.mean[0]) / nm.stdv[0];
  o[plane] = (a1 / nm.scale - nm.mean[1]) / nm.stdv[1];
  o[2 * plane] = (a2 / nm.scale - nm.mean[2]) / nm.stdv[2];
}

}  // namespace face
}  // namespace anonface
