// Schemas of the fused face ops and the host-side checks / planning both backends share.
// Contracts: README (Fused face kernels) and anonface/ops/face_reference.py.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "face_plan.h"

namespace anonface {
namespace face {

void check_frames(const at::Tensor& frames, bool channels_last, const char* name) {
  TORCH_CHECK_VALUE(frames.dim() == 4, name, " must be 4-D [B, H, W, 3] or [B, 3, H, W], got ", frames.dim(),
                    "-D shape ", frames.sizes());
  const auto dt = frames.scalar_type();
  TORCH_CHECK_VALUE(dt == at::kByte || dt == at::kFloat || dt == at::kDouble, name,
                    " must be uint8, float32 or float64, got ", dt);
  const int64_t cdim = channels_last ? 3 : 1;
  TORCH_CHECK_VALUE(frames.size(cdim) == 3, name, " with channels_last=", channels_last,
                    " must have 3 channels in dim ", cdim, ", got shape ", frames.sizes());
  TORCH_CHECK_VALUE(frames.size(0) < (int64_t(1) << 31) &&
                        frames.size(cdim == 1 ? 2 : 1) < (int64_t(1) << 24) &&
                        frames.size(cdim == 1 ? 3 : 2) < (int64_t(1) << 24),
                    name, " is too large: ", frames.sizes());
}

std::array<int64_t, 3> frame_bhw(const at::Tensor& f, bool cl) {
  return cl ? std::array<int64_t, 3>{f.size(0), f.size(1), f.size(2)}
            : std::array<int64_t, 3>{f.size(0), f.size(2), f.size(3)};
}

FrameView frame_view(const at::Tensor& f, bool cl) {
  FrameView v;
  const auto bhw = frame_bhw(f, cl);
  v.B = bhw[0];
  v.H = bhw[1];
  v.W = bhw[2];
  v.sN = f.stride(0);
  if (cl) {
    v.sH = f.stride(1);
    v.sW = f.stride(2);
    v.sC = f.stride(3);
  } else {
    v.sC = f.stride(1);
    v.sH = f.stride(2);
    v.sW = f.stride(3);
  }
  return v;
}

at::ScalarType acc_type(at::ScalarType dt) {
  return dt == at::kDouble ? at::kDouble : at::kFloat;
}

void check_faces(const at::Tensor& faces, const at::Tensor& frames, int64_t K) {
  TORCH_CHECK_VALUE(
      faces.dim() == 4 && faces.size(0) == K && faces.size(1) == 3 && faces.size(2) > 0 && faces.size(3) > 0,
      "faces must be [K=", K, ", 3, Sh, Sw] with Sh, Sw > 0, got shape ", faces.sizes());
  TORCH_CHECK_VALUE(faces.is_floating_point(), "faces must be floating point, got ", faces.scalar_type());
  TORCH_CHECK_VALUE(faces.scalar_type() == acc_type(frames.scalar_type()), "faces must be ",
                    acc_type(frames.scalar_type()), " for ", frames.scalar_type(), " frames, got ",
                    faces.scalar_type());
  TORCH_CHECK_VALUE(faces.device() == frames.device(), "faces must be on the frames' device ",
                    frames.device(), ", got ", faces.device());
  TORCH_CHECK_VALUE(faces.size(2) < (int64_t(1) << 24) && faces.size(3) < (int64_t(1) << 24),
                    "faces are too large: ", faces.sizes());
}

at::Tensor host_rois(const at::Tensor& rois, const at::Device& device, int64_t n_frames) {
  TORCH_CHECK_VALUE(rois.dim() == 2 && rois.size(1) == 5,
                    "rois must be [K, 5] (frame_index, x1, y1, x2, y2), got shape ", rois.sizes());
  TORCH_CHECK_VALUE(rois.is_floating_point(), "rois must be floating point, got ", rois.scalar_type());
  TORCH_CHECK_VALUE(rois.device() == device, "rois must be on the frames' device ", device, ", got ",
                    rois.device());
  at::Tensor h = rois.to(at::kCPU, at::kDouble).contiguous();
  const double* r = h.data_ptr<double>();
  for (int64_t k = 0; k < h.size(0); ++k) {
    const double idx = r[k * 5];
    TORCH_CHECK_VALUE(idx >= 0 && idx < static_cast<double>(n_frames) && idx == std::floor(idx), "rois[", k,
                      ", 0] must be an integral frame index in [0, ", n_frames, "), got ", idx);
  }
  return h;
}

std::array<double, 3> check_triple(at::ArrayRef<double> v, const char* name, bool nonzero) {
  TORCH_CHECK_VALUE(v.size() == 3, name, " must have 3 values (one per channel), got ", v.size());
  std::array<double, 3> out{v[0], v[1], v[2]};
  if (nonzero)
    for (double x : out) TORCH_CHECK_VALUE(x != 0.0, name, " must be non-zero, got ", v);
  return out;
}

int32_t parse_mask(c10::string_view mask) {
  if (mask == "ellipse") return kEllipse;
  if (mask == "box") return kBox;
  TORCH_CHECK_VALUE(false, "mask must be 'ellipse' or 'box', got '", std::string(mask), "'");
  return kEllipse;
}

float inv_band(double feather) {
  TORCH_CHECK_VALUE(feather >= 0.0 && feather <= 0.5,
                    "feather must be in [0, 0.5] (a fraction of the box size), got ", feather);
  return feather > 0 ? static_cast<float>(1.0 / (2.0 * feather)) : 0.f;
}

namespace {

struct Box {
  bool valid;
  int64_t n;
  double x1, y1, x2, y2;
};

Box read_box(const double* r) {
  Box b{};
  b.n = static_cast<int64_t>(r[0]);
  for (int c = 1; c < 5; ++c)
    if (std::isnan(r[c])) return b;
  auto cl = [](double v) { return std::min(std::max(v, -kCoordLimit), kCoordLimit); };
  b.valid = true;
  b.x1 = cl(r[1]);
  b.y1 = cl(r[2]);
  b.x2 = cl(r[3]);
  b.y2 = cl(r[4]);
  return b;
}

// One axis of roi_align(aligned=True, sampling_ratio=-1): per output index the first input
// index and the averaged bilinear weights of its (contiguous) band.
void axis_plan(double lo, double hi, int64_t out, int64_t length, bool replicate, std::vector<int32_t>& start,
               std::vector<std::vector<double>>& w) {
  start.assign(out, 0);
  w.assign(out, {});
  const double s0 = lo - 0.5, e0 = hi - 0.5, size = e0 - s0;
  if (!(size > 0) || length <= 0) return;
  const double bin = size / static_cast<double>(out);
  const int64_t g = std::max<int64_t>(static_cast<int64_t>(std::ceil(size / static_cast<double>(out))), 1);
  const double gd = static_cast<double>(g);
  const double step = bin / gd;
  const double len_d = static_cast<double>(length);
  // Samples can only matter inside [lo_edge, hi_edge]; find their index range per output with a
  // margin of one (the exact test below decides). In replicate mode the samples before (after)
  // that range all read the first (last) index: they are counted, not visited.
  const double lo_edge = replicate ? 0.0 : -1.0, hi_edge = replicate ? len_d - 1.0 : len_d;
  std::vector<std::pair<int64_t, double>> taps;
  for (int64_t p = 0; p < out; ++p) {
    const double base = s0 + static_cast<double>(p) * bin;
    double tlo = std::ceil((lo_edge - base) / step - 0.5) - 1;
    double thi = std::floor((hi_edge - base) / step - 0.5) + 1;
    tlo = std::min(std::max(tlo, 0.0), gd);
    thi = std::min(std::max(thi, tlo - 1), gd - 1);
    const int64_t a = static_cast<int64_t>(tlo), b = static_cast<int64_t>(thi);
    taps.clear();
    if (replicate) {
      if (a > 0) taps.emplace_back(0, static_cast<double>(a) / gd);
      if (b < g - 1) taps.emplace_back(length - 1, static_cast<double>(g - 1 - b) / gd);
    }
    for (int64_t t = a; t <= b; ++t) {
      double y = base + (static_cast<double>(t) + 0.5) * bin / gd;
      if (replicate) {
        y = std::min(std::max(y, 0.0), len_d - 1.0);
      } else if (y < -1.0 || y > len_d) {
        continue;
      }
      if (y <= 0) y = 0;
      int64_t low = static_cast<int64_t>(std::floor(y)), high;
      double fr;
      if (low >= length - 1) {
        low = high = length - 1;
        fr = 0;
      } else {
        high = low + 1;
        fr = y - static_cast<double>(low);
      }
      taps.emplace_back(low, (1.0 - fr) / gd);
      taps.emplace_back(high, fr / gd);
    }
    if (taps.empty()) continue;
    int64_t mn = taps[0].first, mx = taps[0].first;
    for (auto& t : taps) {
      mn = std::min(mn, t.first);
      mx = std::max(mx, t.first);
    }
    start[p] = static_cast<int32_t>(mn);
    w[p].assign(mx - mn + 1, 0.0);
    for (auto& t : taps) w[p][t.first - mn] += t.second;
  }
}

template <class acc_t>
void fill_axis(int64_t k, const std::vector<int32_t>& start, const std::vector<std::vector<double>>& w,
               int64_t L, at::Tensor& st_t, at::Tensor& len_t, at::Tensor& w_t) {
  const int64_t out = static_cast<int64_t>(start.size());
  int32_t* st = st_t.data_ptr<int32_t>() + k * out;
  int32_t* ln = len_t.data_ptr<int32_t>() + k * out;
  acc_t* ww = w_t.data_ptr<acc_t>() + k * out * L;
  for (int64_t p = 0; p < out; ++p) {
    st[p] = start[p];
    ln[p] = static_cast<int32_t>(w[p].size());
    for (size_t t = 0; t < w[p].size(); ++t)
      ww[p * L + static_cast<int64_t>(t)] = static_cast<acc_t>(w[p][t]);
  }
}

void pixel_range(double lo, double hi, int64_t length, int32_t& a, int32_t& b) {
  const double l = static_cast<double>(length);
  const double fa = std::min(std::max(std::ceil(lo - 0.5), 0.0), l);
  const double fb = std::min(std::max(std::ceil(hi - 0.5), 0.0), l);
  a = static_cast<int32_t>(fa);
  b = std::max(a, static_cast<int32_t>(fb));
}

}  // namespace

CropPlan CropPlan::to(const at::Device& device) const {
  CropPlan p = *this;
  p.frame = frame.to(device);
  p.ystart = ystart.to(device);
  p.ylen = ylen.to(device);
  p.xstart = xstart.to(device);
  p.xlen = xlen.to(device);
  p.wy = wy.to(device);
  p.wx = wx.to(device);
  return p;
}

CropPlan plan_crop(const at::Tensor& rois_host, int64_t sh, int64_t sw, int64_t H, int64_t W,
                   at::ScalarType acc, bool replicate) {
  const int64_t K = rois_host.size(0);
  const double* r = rois_host.data_ptr<double>();
  std::vector<std::vector<int32_t>> ys(K), xs(K);
  std::vector<std::vector<std::vector<double>>> wys(K), wxs(K);
  std::vector<int32_t> frame(K, -1);
  int64_t Ly = 1, Lx = 1;
  for (int64_t k = 0; k < K; ++k) {
    const Box b = read_box(r + k * 5);
    if (!b.valid) {
      ys[k].assign(sh, 0);
      wys[k].assign(sh, {});
      xs[k].assign(sw, 0);
      wxs[k].assign(sw, {});
      continue;
    }
    frame[k] = static_cast<int32_t>(b.n);
    axis_plan(b.y1, b.y2, sh, H, replicate, ys[k], wys[k]);
    axis_plan(b.x1, b.x2, sw, W, replicate, xs[k], wxs[k]);
    for (auto& v : wys[k]) Ly = std::max<int64_t>(Ly, static_cast<int64_t>(v.size()));
    for (auto& v : wxs[k]) Lx = std::max<int64_t>(Lx, static_cast<int64_t>(v.size()));
  }
  CropPlan p;
  auto i32 = at::TensorOptions().dtype(at::kInt);
  p.frame = at::from_blob(frame.data(), {K}, i32).clone();
  p.ystart = at::empty({K, sh}, i32);
  p.ylen = at::empty({K, sh}, i32);
  p.xstart = at::empty({K, sw}, i32);
  p.xlen = at::empty({K, sw}, i32);
  p.wy = at::zeros({K, sh, Ly}, at::TensorOptions().dtype(acc));
  p.wx = at::zeros({K, sw, Lx}, at::TensorOptions().dtype(acc));
  p.Ly = Ly;
  p.Lx = Lx;
  for (int64_t k = 0; k < K; ++k) {
    if (acc == at::kDouble) {
      fill_axis<double>(k, ys[k], wys[k], Ly, p.ystart, p.ylen, p.wy);
      fill_axis<double>(k, xs[k], wxs[k], Lx, p.xstart, p.xlen, p.wx);
    } else {
      fill_axis<float>(k, ys[k], wys[k], Ly, p.ystart, p.ylen, p.wy);
      fill_axis<float>(k, xs[k], wxs[k], Lx, p.xstart, p.xlen, p.wx);
    }
  }
  return p;
}

at::Tensor plan_paste(const at::Tensor& rois_host, int64_t H, int64_t W, int64_t sh, int64_t sw) {
  const int64_t K = rois_host.size(0);
  at::Tensor packed = at::zeros({K * static_cast<int64_t>(sizeof(PasteGeom))}, at::kByte);
  PasteGeom* g = reinterpret_cast<PasteGeom*>(packed.data_ptr<uint8_t>());
  const double* r = rois_host.data_ptr<double>();
  for (int64_t k = 0; k < K; ++k) {
    PasteGeom q;
    std::memset(&q, 0, sizeof(q));
    q.n = -1;
    q.sh = static_cast<int32_t>(sh);
    q.sw = static_cast<int32_t>(sw);
    const Box b = read_box(r + k * 5);
    if (b.valid) {
      pixel_range(b.y1, b.y2, H, q.i0, q.i1);
      pixel_range(b.x1, b.x2, W, q.j0, q.j1);
      if (q.i1 > q.i0 && q.j1 > q.j0) {  // implies x2 > x1 and y2 > y1
        q.n = static_cast<int32_t>(b.n);
        q.x1 = static_cast<float>(b.x1);
        q.y1 = static_cast<float>(b.y1);
        q.sy = static_cast<float>(static_cast<double>(sh) / (b.y2 - b.y1));
        q.sx = static_cast<float>(static_cast<double>(sw) / (b.x2 - b.x1));
        q.cx = static_cast<float>((b.x1 + b.x2) / 2);
        q.cy = static_cast<float>((b.y1 + b.y2) / 2);
        q.ia = static_cast<float>(2.0 / (b.x2 - b.x1));
        q.ib = static_cast<float>(2.0 / (b.y2 - b.y1));
      } else {
        q.i0 = q.i1 = q.j0 = q.j1 = 0;
      }
    }
    g[k] = q;
  }
  return packed;
}

at::Tensor plan_cells(const at::Tensor& geoms_host, int32_t cells) {
  const int64_t K = geoms_host.numel() / static_cast<int64_t>(sizeof(PasteGeom));
  const PasteGeom* g = geoms_ptr(geoms_host);
  at::Tensor b = at::zeros({K, 2, cells + 1}, at::kInt);
  int32_t* p = b.data_ptr<int32_t>();
  for (int64_t k = 0; k < K; ++k) {
    for (int axis = 0; axis < 2; ++axis) {
      int32_t* bb = p + (k * 2 + axis) * (cells + 1);
      const int32_t lo = axis == 0 ? g[k].i0 : g[k].j0, hi = axis == 0 ? g[k].i1 : g[k].j1;
      for (int32_t c = 0; c <= cells; ++c) bb[c] = hi;
      int32_t next = 0;
      for (int32_t idx = lo; idx < hi && next < cells; ++idx) {
        const int32_t c =
            axis == 0 ? cell_index(idx, g[k].y1, g[k].sy, cells) : cell_index(idx, g[k].x1, g[k].sx, cells);
        while (next <= c) bb[next++] = idx;
      }
    }
  }
  return b;
}

int64_t blur_grid(double strength) {
  const double g = std::ceil(3.0 / strength);
  return static_cast<int64_t>(std::min(std::max(g, 4.0), 128.0));
}

at::Tensor gaussian_taps(double sigma, at::ScalarType acc) {
  const int64_t radius = std::max<int64_t>(static_cast<int64_t>(std::ceil(3.0 * sigma)), 1);
  std::vector<double> w(2 * radius + 1);
  double sum = 0;
  for (int64_t t = -radius; t <= radius; ++t) {
    const double x = static_cast<double>(t) / sigma;
    w[t + radius] = std::exp(-0.5 * x * x);
    sum += w[t + radius];
  }
  for (auto& v : w) v /= sum;
  return at::from_blob(w.data(), {2 * radius + 1}, at::kDouble).to(acc).clone();
}

CropCall prepare_crop(const at::Tensor& frames, const at::Tensor& rois, at::IntArrayRef size,
                      at::ArrayRef<double> mean, at::ArrayRef<double> std_, bool channels_last) {
  check_frames(frames, channels_last);
  TORCH_CHECK_VALUE(size.size() == 2 && size[0] > 0 && size[1] > 0,
                    "size must be (height, width) with positive values, got ", size);
  CropCall c;
  c.mean = check_triple(mean, "mean", false);
  c.stdv = check_triple(std_, "std", true);
  c.bhw = frame_bhw(frames, channels_last);
  c.rois = host_rois(rois, frames.device(), c.bhw[0]);
  c.K = c.rois.size(0);
  c.sh = size[0];
  c.sw = size[1];
  c.acc = acc_type(frames.scalar_type());
  return c;
}

PasteCall prepare_paste(const at::Tensor& frames, const at::Tensor& faces, const at::Tensor& rois,
                        at::ArrayRef<double> mean, at::ArrayRef<double> std_, c10::string_view mask,
                        double feather, bool channels_last) {
  check_frames(frames, channels_last);
  PasteCall c;
  c.mean = check_triple(mean, "mean", false);
  c.stdv = check_triple(std_, "std", true);
  c.mask = parse_mask(mask);
  c.inv_band = inv_band(feather);
  c.bhw = frame_bhw(frames, channels_last);
  c.rois = host_rois(rois, frames.device(), c.bhw[0]);
  c.K = c.rois.size(0);
  check_faces(faces, frames, c.K);
  return c;
}

ModifyCall prepare_modify(const at::Tensor& frames, const at::Tensor& rois, c10::string_view method,
                          double strength, c10::string_view mask, double feather, bool channels_last) {
  check_frames(frames, channels_last);
  ModifyCall c;
  c.method = parse_method(method);
  check_strength(c.method, strength);
  c.mask = parse_mask(mask);
  c.inv_band = inv_band(feather);
  c.bhw = frame_bhw(frames, channels_last);
  c.rois = host_rois(rois, frames.device(), c.bhw[0]);
  c.K = c.rois.size(0);
  return c;
}

double noise_inv_sd() {
  return 1.0 / std::sqrt(4.0 * (65536.0 * 65536.0 - 1.0) / 12.0);
}

namespace {

// The in-place ops have no derivative: at the Autograd key (every backend) they refuse frames
// that require grad, whose gradient they would silently break, then run the backend kernel.
void check_no_grad(const at::Tensor& frames, const char* op) {
  TORCH_CHECK_VALUE(!frames.requires_grad(), op,
                    " writes into frames and has no autograd; got frames that require grad (use ",
                    std::string(op, std::strlen(op) - 1), ", which is differentiable)");
}

void face_paste_inplace_autograd(const at::Tensor& frames, const at::Tensor& faces, const at::Tensor& rois,
                                 at::ArrayRef<double> mean, at::ArrayRef<double> std_, c10::string_view mask,
                                 double feather, bool channels_last) {
  check_no_grad(frames, "face_paste_");
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("anonface::face_paste_", "")
          .typed<void(const at::Tensor&, const at::Tensor&, const at::Tensor&, at::ArrayRef<double>,
                      at::ArrayRef<double>, c10::string_view, double, bool)>();
  at::AutoDispatchBelowAutograd below;
  op.call(frames, faces, rois, mean, std_, mask, feather, channels_last);
}

void face_modify_inplace_autograd(const at::Tensor& frames, const at::Tensor& rois, c10::string_view method,
                                  double strength, c10::string_view mask, double feather, int64_t seed,
                                  bool channels_last) {
  check_no_grad(frames, "face_modify_");
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("anonface::face_modify_", "")
                       .typed<void(const at::Tensor&, const at::Tensor&, c10::string_view, double,
                                   c10::string_view, double, int64_t, bool)>();
  at::AutoDispatchBelowAutograd below;
  op.call(frames, rois, method, strength, mask, feather, seed, channels_last);
}

}  // namespace

}  // namespace face
}  // namespace anonface

TORCH_LIBRARY_FRAGMENT(anonface, m) {
  m.def(
      "face_crop(Tensor frames, Tensor rois, int[] size, float[] mean, float[] std, "
      "bool channels_last) -> Tensor");
  m.def(
      "_face_crop_backward(Tensor grad, Tensor rois, int[] frames_shape, float[] std, "
      "bool channels_last) -> Tensor");
  m.def(
      "face_paste(Tensor frames, Tensor faces, Tensor rois, float[] mean, float[] std, str mask, "
      "float feather, bool channels_last) -> Tensor");
  m.def(
      "_face_paste_backward(Tensor grad, Tensor faces, Tensor rois, float[] std, str mask, "
      "float feather, bool channels_last) -> (Tensor, Tensor)");
  m.def(
      "face_modify(Tensor frames, Tensor rois, str method, float strength, str mask, "
      "float feather, int seed, bool channels_last) -> Tensor");
  // In-place variants for inference: write into `frames` (no autograd).
  m.def(
      "face_paste_(Tensor(a!) frames, Tensor faces, Tensor rois, float[] mean, float[] std, "
      "str mask, float feather, bool channels_last) -> ()");
  m.def(
      "face_modify_(Tensor(a!) frames, Tensor rois, str method, float strength, str mask, "
      "float feather, int seed, bool channels_last) -> ()");
}

TORCH_LIBRARY_IMPL(anonface, Autograd, m) {
  m.impl("face_paste_", &anonface::face::face_paste_inplace_autograd);
  m.impl("face_modify_", &anonface::face::face_modify_inplace_autograd);
}
