"""Build facts of the compiled module and the torch-version guard at import."""

from __future__ import annotations

import subprocess
import sys

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
