// CPU building blocks of the fused face kernels, shared by face_crop.cpp, face_paste.cpp and
// face_modify.cpp: the roi_align-weighted crop and the ordered, masked paste.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
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

// Blend every box, in order, into `out` (a copy of `in`, or `in` itself: each pixel is read
// before it is written, by the same task); rows in parallel.
template <class scalar_t, class acc_t>
void paste(const scalar_t* in, const FrameView& vin, scalar_t* out, const FrameView& vout, const PasteGeom* g,
           int64_t K, const Source<acc_t>& src, int32_t mask, float ib) {
  const auto lists = boxes_by_frame(g, K, vin.B);
  const ColumnTables ct = column_tables(g, K, src.kind);
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, vin.W));
  at::parallel_for(0, vin.B * vin.H, grain, [&](int64_t begin, int64_t end) {
    struct RowBox {
      int32_t k;
      Tap tu;
      float ny;
    };
    std::vector<RowBox> row;
    std::vector<std::pair<int64_t, int64_t>> spans;  // the row's covered columns, merged
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / vin.H, i = t % vin.H;
      row.clear();
      spans.clear();
      for (int32_t k : lists[n]) {
        if (i < g[k].i0 || i >= g[k].i1) continue;
        row.push_back(
            {k, source_tap(src.kind, i, g[k].y1, g[k].sy, g[k].sh), mask_coord(i, g[k].cy, g[k].ib)});
        spans.emplace_back(g[k].j0, g[k].j1);
      }
      if (row.empty()) continue;
      // Walk only the columns some box covers: boxes spread across a wide frame would otherwise
      // make every row scan the gaps between them.
      std::sort(spans.begin(), spans.end());
      size_t m = 0;
      for (size_t q = 1; q < spans.size(); ++q) {
        if (spans[q].first <= spans[m].second) {
          spans[m].second = std::max(spans[m].second, spans[q].second);
        } else {
          spans[++m] = spans[q];
        }
      }
      spans.resize(m + 1);
      for (const auto& span : spans)
        for (int64_t j = span.first; j < span.second; ++j) {
          const scalar_t* pin = in + vin.at(n, i, j);
          acc_t orig[3], px[3];
          bool loaded = false, hit = false;
          for (const RowBox& rb : row) {
            const PasteGeom& q = g[rb.k];
            if (j < q.j0 || j >= q.j1) continue;
            const int64_t o = ct.offset[rb.k] + j - q.j0;
            const acc_t alpha = static_cast<acc_t>(alpha_from(ct.coord[o], rb.ny, mask, ib));
            if (alpha == acc_t(0)) continue;  // outside the mask: unchanged
            if (!loaded) {
              for (int c = 0; c < 3; ++c) px[c] = orig[c] = static_cast<acc_t>(pin[c * vin.sC]);
              loaded = true;
            }
            acc_t value[3];
            source_value_taps(src, q, rb.k, i, j, rb.tu, ct.tap[o], orig, value);
            for (int c = 0; c < 3; ++c) px[c] = blend(alpha, value[c], px[c]);
            hit = true;
          }
          if (!hit) continue;
          scalar_t* po = out + vout.at(n, i, j);
          for (int c = 0; c < 3; ++c) po[c * vout.sC] = Store<scalar_t>::from(px[c]);
        }
    }
  });
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
