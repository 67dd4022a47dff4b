"""library_versions(): one record for every artefact, read without importing the libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT
from tiktalk.versions import library_versions

HEAVY = ("torch", "transformers", "faiss", "numpy", "polars", "networkx", "sentence_transformers")


def _fresh_python(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def test_versions_match_the_imported_libraries() -> None:
    import faiss
    import numpy
    import polars
    import torch
    import transformers

    versions = library_versions()
    assert all(isinstance(v, str) for v in versions.values())  # safetensors metadata takes str only
    assert versions["torch"] == torch.__version__ and versions["transformers"] == transformers.__version__
    assert versions["numpy"] == numpy.__version__ and versions["polars"] == polars.__version__
    assert versions["faiss"] == faiss.__version__ and versions["faiss-dist"].startswith("faiss-")
    assert versions["cuda"] == str(torch.version.cuda)
    assert {"python", "tiktalk-kg", "accelerate", "safetensors"} <= set(versions)


def test_versions_import_nothing_heavy_and_agree_without_torch() -> None:
    """Without torch imported, cuda is read from torch/version.py; same answer, no import."""
    code = ("import json, sys; from tiktalk.versions import library_versions; v = library_versions(); "
            f"print(json.dumps([v, sorted(m for m in {HEAVY!r} if m in sys.modules)]))")
    versions, imported = json.loads(_fresh_python(code))
    assert imported == []
    import torch

    assert versions["cuda"] == str(torch.version.cuda)  # the file read agrees with the imported module
    assert versions == library_versions()


def test_cli_help_and_import_kg_stay_light() -> None:
    code = ("import sys; from tiktalk.commands.main import build_parser; build_parser().format_help(); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert _fresh_python(code).strip() == "[]"  # `tiktalk --help` imports no engine
    code = f"import sys, kg; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    assert _fresh_python(code).strip() == "['numpy', 'polars']"  # networkx only when a graph view or pickle needs it
