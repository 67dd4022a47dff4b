"""Registries read installed plugins' entry points (tiktalk.encoders, tiktalk.models, ...):
a fake distribution on sys.path adds an encoder that builds, and shows in the CLI's help."""

from __future__ import annotations

import sys

import pytest

from tiktalk.errors import UsageError
from tiktalk.registry import Registry, entry_point_group

PLUGIN = '''
import hashlib
import numpy as np
from retrieval.encoders import EncoderFactory

class Ones:
    name, dim = "plugin-ones", 4
    fingerprint = hashlib.sha256(b"ones").hexdigest()
    def encode(self, texts, kind="query"):
        return np.full((len(texts), 4), 0.5, dtype=np.float32)

FACTORY = EncoderFactory(lambda _, **kwargs: Ones())
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A distribution ``tiktalk-plugin-test`` with one entry point per group given."""

    def install(groups: dict[str, dict[str, str]]) -> None:
        (tmp_path / "tiktalk_plugin_test.py").write_text(PLUGIN)
        info = tmp_path / "tiktalk_plugin_test-0.1.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiktalk-plugin-test\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items())
            for group, entries in groups.items()))
        monkeypatch.syspath_prepend(str(tmp_path))

    yield install
    sys.modules.pop("tiktalk_plugin_test", None)


def test_group_names_follow_the_registry_kind():
    assert entry_point_group("encoder") == "tiktalk.encoders"
    assert entry_point_group("KG format") == "tiktalk.kg_formats"
    assert entry_point_group("selection") == "tiktalk.selections"


def test_an_encoder_from_an_entry_point_builds_and_appears_in_help(plugin, capsys):
    from retrieval.encoders import ENCODERS, encoder_names, get_encoder
    from tiktalk.commands.main import main

    plugin({"tiktalk.encoders": {"plugin-ones": "tiktalk_plugin_test:FACTORY"}})
    ENCODERS.reload_entry_points()
    try:
        assert "plugin-ones" in encoder_names()
        assert get_encoder("plugin-ones").encode(["a", "b"]).shape == (2, 4)
        with pytest.raises(SystemExit):
            main(["index", "build", "--help"])
        assert "plugin-ones" in " ".join(capsys.readouterr().out.split())
    finally:
        ENCODERS.unregister("plugin-ones")


def test_a_plugin_taking_a_built_in_name_is_refused_naming_both(plugin):
    plugin({"tiktalk.widgets": {"hash": "tiktalk_plugin_test:FACTORY"}})
    widgets = Registry("widget", {"hash": "retrieval.encoders:HashEncoder"})
    with pytest.raises(UsageError, match=r"widget 'hash' of plugin tiktalk-plugin-test .* already registered"):
        widgets.names()


def test_a_registry_without_a_group_reads_none(plugin):
    plugin({"tiktalk.widgets": {"extra": "tiktalk_plugin_test:FACTORY"}})
    assert Registry("widget", {}, entry_points=None).names() == []
    assert Registry("widget", {}).names() == ["extra"]


def test_the_library_registries_read_their_groups():
    from kg.readers import FORMATS
    from retrieval.encoders import ENCODERS
    from retrieval.selection import SELECTIONS
    from tiktalk.importers import IMPORTERS
    from tiktalk.models.base import MODELS

    groups = {r.entry_point_group for r in (ENCODERS, MODELS, FORMATS, IMPORTERS, SELECTIONS)}
    assert groups == {"tiktalk.encoders", "tiktalk.models", "tiktalk.kg_formats", "tiktalk.importers",
                      "tiktalk.selections"}
