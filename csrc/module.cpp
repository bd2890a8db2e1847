// The anonface._C Python module. Tensor ops are registered with the dispatcher
// (TORCH_LIBRARY_FRAGMENT / TORCH_LIBRARY_IMPL in the op files) and reached through
// torch.ops.anonface.*, so this module binds no tensors: it only reports build facts.
#include <pybind11/pybind11.h>

#ifndef ANONFACE_TORCH_VERSION
#define ANONFACE_TORCH_VERSION "unknown"
#endif
#ifndef ANONFACE_CUDA_VERSION
#define ANONFACE_CUDA_VERSION ""
#endif

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "anonface compiled kernels (ops live in torch.ops.anonface)";
#ifdef ANONFACE_WITH_CUDA
  m.attr("has_cuda") = true;
#else
  m.attr("has_cuda") = false;
#endif
  m.attr("torch_version") = ANONFACE_TORCH_VERSION;
  m.attr("cuda_version") = ANONFACE_CUDA_VERSION;
#if defined(__SANITIZE_ADDRESS__)
  m.attr("sanitized") = true;
#else
  m.attr("sanitized") = false;
#endif
}
