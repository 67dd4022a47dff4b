"""Hand-edits with a matching hash: what a hostile or careless user can do to a directory
whose manifest records sha256s. After an edit, :func:`reseal_dataset` / :func:`reseal_index`
write the new hashes, so a test reaches the structural checks behind the hash check."""

from __future__ import annotations

import json
from pathlib import Path

from tiktalk.io import sha256_file


def reseal_dataset(root: Path) -> None:
    """Record the current sha256 of every table, feature and extra file of dataset ``root``."""
    path = Path(root) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for entry in manifest["tables"].values():
        entry["sha256"] = sha256_file(Path(root) / entry["file"])
    files = manifest.get("features", {}).get("files", {})
    for name in files:
        files[name] = sha256_file(Path(root) / name)
    for name in manifest.get("extra_files", {}):
        manifest["extra_files"][name] = sha256_file(Path(root) / name)
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")


def reseal_index(root: Path) -> None:
    """Record the current sha256 of every file an index manifest lists."""
    path = Path(root) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["files"] = {name: sha256_file(Path(root) / name) for name in manifest["files"]}
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
