"""The library versions every saved artefact records (model dirs, run.json, index manifests).

Read from the installed distributions' metadata (``importlib.metadata``), so asking costs no
import of torch, faiss or transformers. Distributions that are not installed are left out.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import platform
import sys

# recorded under their distribution names
DISTRIBUTIONS: tuple[str, ...] = (
    "tiktalk-kg", "torch", "transformers", "accelerate", "safetensors", "numpy", "polars",
    "sentence-transformers",
)
# faiss ships as one of several distributions, all installing the module `faiss`
FAISS_DISTRIBUTIONS: tuple[str, ...] = ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def torch_cuda_version() -> str | None:
    """The CUDA version torch was built with (``None`` for a CPU build or without torch).

    Taken from ``torch.version.cuda`` when torch is already imported, else read from the
    installed ``torch/version.py`` without importing torch.
    """
    if "torch" in sys.modules:
        return sys.modules["torch"].version.cuda
    try:
        source = md.distribution("torch").locate_file("torch/version.py").read_text(encoding="utf-8")
    except (md.PackageNotFoundError, OSError):
        return None
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "cuda" and node.value is not None:
            return ast.literal_eval(node.value)
    return None


def library_versions() -> dict[str, str]:
    """``{"python", "tiktalk-kg", "torch", ..., "faiss", "faiss-dist", "cuda"}`` -> version strings.

    Values are str only (safetensors metadata takes nothing else). ``faiss-dist`` names the
    distribution that installed ``faiss`` (faiss-cpu or a faiss-gpu build); ``cuda`` is the
    CUDA version torch was built with, ``"None"`` for a CPU build.
    """
    versions = {"python": platform.python_version()}
    for dist in DISTRIBUTIONS:
        if (version := _version(dist)) is not None:
            versions[dist] = version
    for dist in FAISS_DISTRIBUTIONS:
        if (version := _version(dist)) is not None:
            versions["faiss"], versions["faiss-dist"] = version, dist
            break
    if "torch" in versions:
        versions["cuda"] = str(torch_cuda_version())
    return versions
