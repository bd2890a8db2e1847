// CPU building blocks of the fused face kernels, shared by face_crop.cpp, face_paste.cpp and
// face_modify.cpp: the roi_align-weighted crop and the ordered, masked paste.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "face_plan.h"

namespace anonface {
namespace face {
namespace cpu {

// out[k, c, ph, pw] = (sum_taps w * frame / scale - mean[c]) / stdv[c]   (out: [K, 3, sh, sw])
template <class scalar_t, class acc_t>
void crop(const scalar_t* f, const FrameView& v, const CropPlan& p, int64_t sh, int64_t sw,
          const Norm<acc_t>& nm, acc_t* out) {
  const int64_t K = p.frame.size(0);
  const int32_t* frame = p.frame.data_ptr<int32_t>();
  const int32_t* ys = p.ystart.data_ptr<int32_t>();
  const int32_t* yl = p.ylen.data_ptr<int32_t>();
  const int32_t* xs = p.xstart.data_ptr<int32_t>();
  const int32_t* xl = p.xlen.data_ptr<int32_t>();
  const acc_t* wy = p.wy.data_ptr<acc_t>();
  const acc_t* wx = p.wx.data_ptr<acc_t>();
  const int64_t Ly = p.Ly, Lx = p.Lx, plane = sh * sw;
  // Small problems run on one thread: waking the pool costs more than they do.
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, sw * Ly * Lx));
  at::parallel_for(0, K * sh, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t k = t / sh, ph = t % sh;
      const int64_t n = frame[k];
      const int64_t y0 = ys[k * sh + ph], ny = n < 0 ? 0 : yl[k * sh + ph];
      for (int64_t pw = 0; pw < sw; ++pw)
        crop_pixel<scalar_t, acc_t>(f, v, n, y0, ny, xs[k * sw + pw], xl[k * sw + pw],
                                    wy + (k * sh + ph) * Ly, wx + (k * sw + pw) * Lx, nm,
                                    out + k * 3 * plane + ph * sw + pw, plane);
    }
  });
}

// Box indices per frame, in order, skipping empty boxes.
inline std::vector<std::vector<int32_t>> boxes_by_frame(const PasteGeom* g, int64_t K, int64_t B) {
  std::vector<std::vector<int32_t>> lists(static_cast<size_t>(B));
  for (int64_t k = 0; k < K; ++k)
    if (g[k].n >= 0 && g[k].n < B) lists[g[k].n].push_back(static_cast<int32_t>(k));
  return lists;
}

// Per-box column tables (source taps and mask coordinate of every covered column), so the
// per-pixel work is only the alpha, the source read and the blend. Same functions as the
// per-pixel path: identical values.
struct ColumnTables {
  std::vector<int64_t> offset;  // per box, into tap/coord
  std::vector<Tap> tap;
  std::vector<float> coord;
};

inline ColumnTables column_tables(const PasteGeom* g, int64_t K, int32_t kind) {
  ColumnTables t;
  t.offset.assign(static_cast<size_t>(K) + 1, 0);
  for (int64_t k = 0; k < K; ++k) t.offset[k + 1] = t.offset[k] + (g[k].n >= 0 ? g[k].j1 - g[k].j0 : 0);
  t.tap.resize(static_cast<size_t>(t.offset[K]));
  t.coord.resize(static_cast<size_t>(t.offset[K]));
  for (int64_t k = 0; k < K; ++k) {
    if (g[k].n < 0) continue;
    for (int64_t j = g[k].j0; j < g[k].j1; ++j) {
      const int64_t o = t.offset[k] + j - g[k].j0;
      t.tap[o] = source_tap(kind, j, g[k].x1, g[k].sx, g[k].sw);
      t.coord[o] = mask_coord(j, g[k].cx, g[k].ia);
    }
  }
  return t;
}

// One row of the paste for a source kind fixed at compile time.
//
// A box's alpha along a row is unimodal in the column: the mask coordinate is monotone in the
// column (correctly rounded operations are monotone), the radius grows with its magnitude and the
// alpha falls with the radius. So the columns where alpha == 1 form one run: a row computes the
// mask only from each end of its span inward until it reaches that run, and inside the run the
// value replaces the pixel (for uint8 frames alpha * value + 0 * pixel == value, exactly). Where
// two boxes' spans overlap, the span is blended box by box in a row buffer (overlapping()). Every
// value is computed by the same functions, in the same order, as the per-pixel loop: the output is
// identical.
template <class scalar_t, class acc_t, int32_t KIND>
struct RowPaster {
  const scalar_t* in;
  FrameView vin;
  scalar_t* out;
  FrameView vout;
  const PasteGeom* g;
  const ColumnTables& ct;
  const Source<acc_t>& src;
  int32_t mask;
  float ib;
  // kFace on uint8 frames (float accumulation): the source's texels interleaved [K, sh, sw, 4]
  // (RGB + pad), so one SSE lane per channel computes the bilinear sample (nullptr: scalar path).
  const float* texels;

  static constexpr bool kBytes = std::is_same<scalar_t, uint8_t>::value;
#if defined(AF_HAVE_SSE2)
  static constexpr bool kVector = KIND == kFace && kBytes && std::is_same<acc_t, float>::value;
#else
  static constexpr bool kVector = false;
#endif

  struct RowBox {
    int32_t k;
    Tap tu;
    float ny;
  };

#if defined(AF_HAVE_SSE2)
  // source_value_kind<kFace> for one row of one box, the three channels in SSE lanes: the same
  // correctly rounded operations in the same order, so the same values.
  struct Bilinear4 {
    const float* ra;
    const float* rb;
    __m128 fu, gu, sd, mn, sc;
    Bilinear4(const RowPaster& p, const RowBox& r) {
      const PasteGeom& q = p.g[r.k];
      const float* box = p.texels + static_cast<int64_t>(r.k) * q.sh * q.sw * 4;
      ra = box + static_cast<int64_t>(r.tu.a) * q.sw * 4;
      rb = box + static_cast<int64_t>(r.tu.b) * q.sw * 4;
      fu = _mm_set1_ps(r.tu.f);
      gu = _mm_sub_ps(_mm_set1_ps(1.f), fu);
      sd = _mm_setr_ps(static_cast<float>(p.src.stdv[0]), static_cast<float>(p.src.stdv[1]),
                       static_cast<float>(p.src.stdv[2]), 0.f);
      mn = _mm_setr_ps(static_cast<float>(p.src.mean[0]), static_cast<float>(p.src.mean[1]),
                       static_cast<float>(p.src.mean[2]), 0.f);
      sc = _mm_set1_ps(static_cast<float>(p.src.scale));
    }
    __m128 at(const Tap& tv) const {
      const __m128 fv = _mm_set1_ps(tv.f), gv = _mm_sub_ps(_mm_set1_ps(1.f), fv);
      const __m128 top = _mm_add_ps(_mm_mul_ps(gv, _mm_loadu_ps(ra + 4 * tv.a)),
                                    _mm_mul_ps(fv, _mm_loadu_ps(ra + 4 * tv.b)));
      const __m128 bot = _mm_add_ps(_mm_mul_ps(gv, _mm_loadu_ps(rb + 4 * tv.a)),
                                    _mm_mul_ps(fv, _mm_loadu_ps(rb + 4 * tv.b)));
      const __m128 v = _mm_add_ps(_mm_mul_ps(gu, top), _mm_mul_ps(fu, bot));
      return _mm_mul_ps(_mm_add_ps(_mm_mul_ps(v, sd), mn), sc);
    }
  };
  static void put3(scalar_t* po, int64_t sc, int32_t v) {
    po[0] = static_cast<scalar_t>(v & 0xFF);
    po[sc] = static_cast<scalar_t>((v >> 8) & 0xFF);
    po[2 * sc] = static_cast<scalar_t>((v >> 16) & 0xFF);
  }
  // blend() on each lane.
  static __m128 blend4(float alpha, __m128 value, __m128 prev) {
    const __m128 a = _mm_set1_ps(alpha);
    return _mm_add_ps(_mm_mul_ps(a, value), _mm_mul_ps(_mm_sub_ps(_mm_set1_ps(1.f), a), prev));
  }
  // Store<uint8_t>::from on each lane (NaN -> 0, clamp, round half to even), packed into the
  // low three bytes.
  static int32_t bytes4(__m128 v) {
    v = _mm_min_ps(_mm_max_ps(v, _mm_setzero_ps()), _mm_set1_ps(255.f));  // max(NaN, 0) -> 0
    const __m128i w = _mm_cvtps_epi32(v);
    return _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(w, w), w));
  }
#endif

  // Blend box rb into pixel (n, i, j) with the given alpha (> 0), reading the input pixel.
  void blend_one(const RowBox& rb, int64_t n, int64_t i, int64_t j, int64_t o, acc_t alpha) const {
    const scalar_t* pin = in + vin.at(n, i, j);
    acc_t orig[3], value[3];
    for (int c = 0; c < 3; ++c) orig[c] = static_cast<acc_t>(pin[c * vin.sC]);
    source_value_kind<KIND>(src, g[rb.k], rb.k, i, j, rb.tu, ct.tap[o], orig, value);
    scalar_t* po = out + vout.at(n, i, j);
    for (int c = 0; c < 3; ++c) po[c * vout.sC] = Store<scalar_t>::from(blend(alpha, value[c], orig[c]));
  }

  // Columns [j0, j1) of one box that no other box of this row touches.
  void single(const RowBox& rb, int64_t n, int64_t i) const {
    const int64_t base = ct.offset[rb.k] - g[rb.k].j0;
#if defined(AF_HAVE_SSE2)
    if constexpr (kVector) {
      if (texels != nullptr) {
        const Bilinear4 bl(*this, rb);
        walk(
            rb, base,
            [&](int64_t j, acc_t a) {
              const scalar_t* pin = in + vin.at(n, i, j);
              const __m128 px = _mm_setr_ps(static_cast<float>(pin[0]), static_cast<float>(pin[vin.sC]),
                                            static_cast<float>(pin[2 * vin.sC]), 0.f);
              put3(out + vout.at(n, i, j), vout.sC,
                   bytes4(blend4(static_cast<float>(a), bl.at(ct.tap[base + j]), px)));
            },
            [&](int64_t lo, int64_t hi) {
              scalar_t* po = out + vout.at(n, i, lo);
              for (int64_t j = lo; j < hi; ++j, po += vout.sW)
                put3(po, vout.sC, bytes4(bl.at(ct.tap[base + j])));
            });
        return;
      }
    }
#endif
    walk(
        rb, base, [&](int64_t j, acc_t a) { blend_one(rb, n, i, j, base + j, a); },
        [&](int64_t lo, int64_t hi) { interior(rb, n, i, lo, hi, base); });
  }

  // alpha == 1 on [lo, hi).
  void interior(const RowBox& rb, int64_t n, int64_t i, int64_t lo, int64_t hi, int64_t base) const {
    const acc_t one = static_cast<acc_t>(1);
    if constexpr (!kBytes || KIND == kNoise) {
      for (int64_t j = lo; j < hi; ++j) blend_one(rb, n, i, j, base + j, one);
    } else {
      scalar_t* po = out + vout.at(n, i, lo);
      const int64_t step = vout.sW, sc = vout.sC;
      if constexpr (KIND == kSolid) {
        const uint8_t v = Store<uint8_t>::from(src.solid);
        for (int64_t j = lo; j < hi; ++j, po += step) po[0] = po[sc] = po[2 * sc] = v;
      } else if constexpr (KIND == kCells) {
        // the row's cells, rounded once
        const PasteGeom& q = g[rb.k];
        const int64_t plane = static_cast<int64_t>(q.sh) * q.sw;
        const acc_t* row =
            src.data + static_cast<int64_t>(rb.k) * 3 * plane + static_cast<int64_t>(rb.tu.a) * q.sw;
        int32_t cell = -1;
        uint8_t v[3] = {0, 0, 0};
        for (int64_t j = lo; j < hi; ++j, po += step) {
          const int32_t c = ct.tap[base + j].a;
          if (c != cell) {
            cell = c;
            for (int ch = 0; ch < 3; ++ch) v[ch] = Store<uint8_t>::from(row[ch * plane + c]);
          }
          po[0] = v[0];
          po[sc] = v[1];
          po[2 * sc] = v[2];
        }
      } else {
        const acc_t none[3] = {0, 0, 0};
        acc_t value[3];
        for (int64_t j = lo; j < hi; ++j, po += step) {
          source_value_kind<KIND>(src, g[rb.k], rb.k, i, j, rb.tu, ct.tap[base + j], none, value);
          for (int c = 0; c < 3; ++c) po[c * sc] = Store<uint8_t>::from(value[c]);
        }
      }
    }
  }

  // The columns of box rb where alpha > 0: band(j, alpha) for those with 0 < alpha < 1, found
  // from each end inward, then run(lo, hi) for the columns [lo, hi) between, where alpha == 1.
  template <class Band, class Run>
  void walk(const RowBox& rb, int64_t base, Band&& band, Run&& run) const {
    const PasteGeom& q = g[rb.k];
    const acc_t one = static_cast<acc_t>(1), zero = static_cast<acc_t>(0);
    auto alpha_at = [&](int64_t j) {
      return static_cast<acc_t>(alpha_from(ct.coord[base + j], rb.ny, mask, ib));
    };
    int64_t lo = q.j0, end = q.j1;
    if (mask == kEllipse) {
      // Skip the columns outside the ellipse: from an estimate of where it starts, checked. As
      // alpha only rises towards its peak, a column with alpha 0 has only zeros beyond it.
      const double half = std::sqrt(std::max(0.0, 1.0 - double(rb.ny) * double(rb.ny))) / double(q.ia);
      const int64_t left = static_cast<int64_t>(std::floor(double(q.cx) - half - 0.5)) - 1;
      const int64_t right = static_cast<int64_t>(std::ceil(double(q.cx) + half - 0.5)) + 1;
      if (left > lo && left < end && alpha_at(left) == zero) lo = left + 1;
      if (right >= lo && right < end - 1 && alpha_at(right) == zero) end = right;
    }
    for (; lo < end; ++lo) {
      const acc_t a = alpha_at(lo);
      if (a == one) break;
      if (a != zero) band(lo, a);
    }
    if (lo == end) return;
    int64_t hi = end - 1;
    for (; hi > lo; --hi) {
      const acc_t a = alpha_at(hi);
      if (a == one) break;
      if (a != zero) band(hi, a);
    }
    run(lo, hi + 1);
  }

  // Columns [j0, j1) that several boxes of this row cover: the span's pixels are held in acc_t,
  // each box in order blends into them (mask maths only from its ends to its alpha == 1 run, as
  // above, but always the full blend: an earlier box may have left a non-finite value), and the
  // pixels some box touched are rounded once at the end, as the per-pixel order would.
  void overlapping(const std::vector<RowBox>& row, int64_t n, int64_t i, int64_t j0, int64_t j1,
                   std::vector<acc_t>& buf, std::vector<uint8_t>& touched) const {
    const int64_t len = j1 - j0;
    buf.assign(static_cast<size_t>(4 * len), acc_t(0));
    touched.assign(static_cast<size_t>(len), 0);
    for (int64_t j = j0; j < j1; ++j) {
      const scalar_t* pin = in + vin.at(n, i, j);
      for (int c = 0; c < 3; ++c) buf[4 * (j - j0) + c] = static_cast<acc_t>(pin[c * vin.sC]);
    }
    for (const RowBox& rb : row) {
      const PasteGeom& q = g[rb.k];
      const int64_t base = ct.offset[rb.k] - q.j0;
#if defined(AF_HAVE_SSE2)
      if constexpr (kVector) {
        if (texels != nullptr) {
          const Bilinear4 bl(*this, rb);
          auto apply4 = [&](int64_t j, acc_t alpha) {
            float* px = reinterpret_cast<float*>(buf.data()) + 4 * (j - j0);
            _mm_storeu_ps(px, blend4(static_cast<float>(alpha), bl.at(ct.tap[base + j]), _mm_loadu_ps(px)));
            touched[j - j0] = 1;
          };
          walk(rb, base, apply4, [&](int64_t lo, int64_t hi) {
            for (int64_t j = lo; j < hi; ++j) apply4(j, acc_t(1));
          });
          continue;
        }
      }
#endif
      auto apply = [&](int64_t j, acc_t alpha) {
        acc_t orig[3], value[3];
        const scalar_t* pin = in + vin.at(n, i, j);
        for (int c = 0; c < 3; ++c) orig[c] = static_cast<acc_t>(pin[c * vin.sC]);
        source_value_kind<KIND>(src, q, rb.k, i, j, rb.tu, ct.tap[base + j], orig, value);
        acc_t* px = buf.data() + 4 * (j - j0);
        for (int c = 0; c < 3; ++c) px[c] = blend(alpha, value[c], px[c]);
        touched[j - j0] = 1;
      };
      walk(rb, base, apply, [&](int64_t lo, int64_t hi) {
        for (int64_t j = lo; j < hi; ++j) apply(j, acc_t(1));
      });
    }
    for (int64_t j = j0; j < j1; ++j) {
      if (!touched[j - j0]) continue;
      scalar_t* po = out + vout.at(n, i, j);
      const acc_t* px = buf.data() + 4 * (j - j0);
      for (int c = 0; c < 3; ++c) po[c * vout.sC] = Store<scalar_t>::from(px[c]);
    }
  }
};

// Blend every box, in order, into `out` (a copy of `in`, or `in` itself: each pixel is read
// before it is written, by the same task); rows in parallel.
template <class scalar_t, class acc_t, int32_t KIND>
void paste_kind(const scalar_t* in, const FrameView& vin, scalar_t* out, const FrameView& vout,
                const PasteGeom* g, const std::vector<std::vector<int32_t>>& lists, const ColumnTables& ct,
                const Source<acc_t>& src, int32_t mask, float ib, const float* texels = nullptr) {
  using Paster = RowPaster<scalar_t, acc_t, KIND>;
  const Paster rp{in, vin, out, vout, g, ct, src, mask, ib, texels};
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, vin.W));
  at::parallel_for(0, vin.B * vin.H, grain, [&](int64_t begin, int64_t end) {
    std::vector<typename Paster::RowBox> row;
    std::vector<std::pair<std::pair<int64_t, int64_t>, int32_t>> spans;  // (j0, j1), index into row
    std::vector<typename Paster::RowBox> group;
    std::vector<acc_t> buf;
    std::vector<uint8_t> touched;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / vin.H, i = t % vin.H;
      row.clear();
      spans.clear();
      for (int32_t k : lists[n]) {
        if (i < g[k].i0 || i >= g[k].i1) continue;
        spans.push_back({{g[k].j0, g[k].j1}, static_cast<int32_t>(row.size())});
        row.push_back({k, source_tap(KIND, i, g[k].y1, g[k].sy, g[k].sh), mask_coord(i, g[k].cy, g[k].ib)});
      }
      if (row.empty()) continue;
      // Walk only the columns some box covers, one merged span at a time: a span of one box
      // takes single(), a span where boxes overlap overlapping() (in paste order).
      std::sort(spans.begin(), spans.end());
      size_t q = 0;
      while (q < spans.size()) {
        int64_t j0 = spans[q].first.first, j1 = spans[q].first.second;
        size_t r = q + 1;
        while (r < spans.size() && spans[r].first.first < j1) j1 = std::max(j1, spans[r++].first.second);
        if (r == q + 1) {
          rp.single(row[spans[q].second], n, i);
        } else {
          group.clear();  // the boxes of this span, in their paste order
          for (const auto& rb : row)
            if (g[rb.k].j0 < j1 && g[rb.k].j1 > j0) group.push_back(rb);
          rp.overlapping(group, n, i, j0, j1, buf, touched);
        }
        q = r;
      }
    }
  });
}

// The kFace source's texels as [K, sh, sw, 4] floats for the SSE path, when the accumulation is
// float and the boxes paint more pixels than the source holds texels (else: empty).
template <class acc_t>
std::vector<float> interleave_texels(const PasteGeom* g, int64_t K, const Source<acc_t>& src) {
  std::vector<float> t;
#if defined(AF_HAVE_SSE2)
  if constexpr (std::is_same<acc_t, float>::value) {
    int64_t pixels = 0, texels = 0, sh = 0, sw = 0;
    for (int64_t k = 0; k < K; ++k) {
      if (g[k].n < 0) continue;
      pixels += int64_t(g[k].i1 - g[k].i0) * (g[k].j1 - g[k].j0);
      sh = g[k].sh, sw = g[k].sw;
    }
    texels = K * sh * sw;
    if (texels == 0 || texels > pixels) return t;
    t.assign(static_cast<size_t>(texels * 4), 0.f);
    const int64_t plane = sh * sw;
    for (int64_t k = 0; k < K; ++k)
      for (int c = 0; c < 3; ++c) {
        const float* p = src.data + (k * 3 + c) * plane;
        float* o = t.data() + k * plane * 4 + c;
        for (int64_t x = 0; x < plane; ++x) o[4 * x] = p[x];
      }
  }
#endif
  return t;
}

template <class scalar_t, class acc_t>
void paste(const scalar_t* in, const FrameView& vin, scalar_t* out, const FrameView& vout, const PasteGeom* g,
           int64_t K, const Source<acc_t>& src, int32_t mask, float ib) {
  const auto lists = boxes_by_frame(g, K, vin.B);
  const ColumnTables ct = column_tables(g, K, src.kind);
  switch (src.kind) {
    case kFace: {
      const std::vector<float> texels =
          std::is_same<scalar_t, uint8_t>::value ? interleave_texels(g, K, src) : std::vector<float>();
      paste_kind<scalar_t, acc_t, kFace>(in, vin, out, vout, g, lists, ct, src, mask, ib,
                                         texels.empty() ? nullptr : texels.data());
      break;
    }
    case kCells:
      paste_kind<scalar_t, acc_t, kCells>(in, vin, out, vout, g, lists, ct, src, mask, ib);
      break;
    case kSolid:
      paste_kind<scalar_t, acc_t, kSolid>(in, vin, out, vout, g, lists, ct, src, mask, ib);
      break;
    default:
      paste_kind<scalar_t, acc_t, kNoise>(in, vin, out, vout, g, lists, ct, src, mask, ib);
  }
}

// A fresh contiguous tensor of the frames' shape holding a copy of them. Large outputs are
// advised onto transparent huge pages before the first touch (as numpy does): on a 1080p batch
// the page faults of a fresh allocation otherwise cost about three times the copy itself.
inline at::Tensor copy_frames(const at::Tensor& frames) {
  at::Tensor out = at::empty(frames.sizes(), frames.options());
  const size_t nbytes = out.nbytes();
  if (nbytes == 0) return out;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (nbytes >= (size_t(4) << 20)) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(out.data_ptr());
    const uintptr_t a = (p + 4095) & ~uintptr_t(4095);
    if (a < p + nbytes) madvise(reinterpret_cast<void*>(a), p + nbytes - a, MADV_HUGEPAGE);
  }
#endif
  if (frames.is_contiguous()) {
    std::memcpy(out.data_ptr(), frames.data_ptr(), nbytes);
  } else {
    out.copy_(frames);
  }
  return out;
}

}  // namespace cpu
}  // namespace face
}  // namespace anonface
