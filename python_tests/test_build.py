"""Build facts of the compiled module and the torch-version guard at import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import anonface


def test_build_info_reports_the_torch_it_was_built_against():
    info = anonface.build_info()
    assert info["torch_version"].split("+")[0] == torch.__version__.split("+")[0]
    assert isinstance(info["has_cuda"], bool)
    if not info["has_cuda"]:
        assert info["cuda_version"] is None
    # the ops are registered with the dispatcher once the package is imported
    assert hasattr(torch.ops.anonface, "roi_align")
    assert hasattr(torch.ops.anonface, "roi_pool")


def test_import_under_another_torch_fails_with_rebuild_hint():
    code = (
        "import torch\n"
        "torch.__version__ = '0.0.1+fake'\n"
        "try:\n"
        "    import anonface\n"
        "except ImportError as e:\n"
        "    print('IMPORT-ERROR:', e)\n"
        "else:\n"
        "    print('IMPORTED')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "IMPORT-ERROR:" in out.stdout, out.stdout + out.stderr
    assert "0.0.1+fake" in out.stdout and "--no-build-isolation" in out.stdout


def test_module_shares_the_process_cxx_runtime():
    """The compiled module must not carry its own copy of libstdc++: such a copy has its own locale
    state, and the first error message that formats a number crashes the process (it did, on a
    GPU machine whose compiler found only a static libstdc++)."""
    import shutil

    import anonface._C as ext

    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("needs nm (binutils) to read the module's symbols")
    out = subprocess.run([nm, "-D", "--defined-only", "-C", ext.__file__], capture_output=True, text=True,
                         check=True).stdout
    runtime = [ln for ln in out.splitlines() if "std::basic_ostream" in ln or "std::locale::" in ln]
    assert not runtime, f"{ext.__file__} defines C++ runtime symbols itself: {runtime[:5]}"


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_an_error_with_a_number_in_it_reaches_python(device, tmp_path):
    """Run in a child process: a runtime mix-up crashes the interpreter rather than failing. The child
    starts in an empty folder, so it imports the installed anonface, not a source tree beside it."""
    if device == "cuda" and not (torch.cuda.is_available() and anonface.build_info()["has_cuda"]):
        pytest.skip("needs a CUDA build and a GPU")
    code = (
        "import torch, anonface.ops as o\n"
        f"f = torch.zeros(2, 10, 12, 3, dtype=torch.uint8, device='{device}')\n"
        f"r = torch.tensor([[2.0, 1, 1, 5, 5]], device='{device}')\n"
        "try:\n    o.face_crop(f, r, 4)\nexcept ValueError as e:\n    print('refused:', e)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, f"child died ({res.returncode}): {res.stderr[-2000:]}"
    assert "refused:" in res.stdout and "frame index" in res.stdout
