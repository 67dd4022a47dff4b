"""The layers, checked from the source: who may import whom, and no import cycles.

Every import statement counts, wherever it sits: module level, inside functions, under
``if TYPE_CHECKING:``. Rules (STYLE.md "Layers"):

(a) only the command layer (``tiktalk.commands``, and ``tiktalk.__main__`` that starts it)
    imports ``tiktalk.commands``;
(b) ``fusion`` never imports ``baselines`` and ``baselines`` never imports ``fusion``;
(c) the model platform (``tiktalk.models``) and the ground floor (every other module of
    ``tiktalk`` but the command and run layers: ``tiktalk/*.py``, ``tiktalk.dataset``,
    ``tiktalk.importers``, ...) import none of ``fusion``, ``baselines``, ``retrieval``, ``kg``;
(d) no import cycle between the modules of the project;
(e) a command module imports no other command module (the package ``tiktalk.commands``, its
    shared helpers, aside; ``tiktalk.commands.main`` names the modules in its registry as strings);
(f) nothing re-enters the command line: no call of ``_cli(...)`` and no ``main([...])`` with an
    argv list, in the library or the commands (the run layer calls library functions);
(g) the run layer (``tiktalk.runs``) may import the whole library, and only the command layer
    and the benchmark suites (commands too, STYLE.md "Layers") import it (the library never does).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kg", "retrieval", "fusion", "baselines", "tiktalk", "benchmarks")
COMMAND_LAYER = ("tiktalk.commands", "tiktalk.__main__")
RUN_LAYER = "tiktalk.runs"

Edge = tuple[str, str, str]  # (importer, imported module, "file:line")


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted name -> file, for every module inside the (nested) packages under ``root``.

    Folders without ``__init__.py`` (data folders with their generator scripts) are not
    packages and are not walked.
    """
    modules: dict[str, Path] = {}

    def walk(folder: Path, dotted: str) -> None:
        for path in sorted(folder.iterdir()):
            if path.is_dir() and (path / "__init__.py").is_file():
                walk(path, f"{dotted}.{path.name}")
            elif path.suffix == ".py":
                modules[dotted if path.name == "__init__.py" else f"{dotted}.{path.stem}"] = path

    for package in packages:
        walk(root / package, package)
    return modules


def import_edges(modules: dict[str, Path], root: Path) -> list[Edge]:
    """Every import of one project module by another (the most specific module named)."""
    edges: list[Edge] = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # `from pkg import sub` imports the module pkg.sub; `from pkg import name` imports pkg
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            else:
                continue
            where = f"{path.relative_to(root)}:{node.lineno}"
            for target in targets:
                while target and target not in modules:  # `import a.b.c` of a non-module attribute path
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.append((name, target, where))
    return edges


def layer_violations(edges: list[Edge]) -> list[str]:
    problems = []
    for importer, target, where in edges:
        if _in(target, "tiktalk.commands") and not any(_in(importer, c) for c in COMMAND_LAYER):
            problems.append(f"(a) {where}: library module {importer} imports the command layer ({target})")
        if (_in(importer, "fusion") and _in(target, "baselines")) or (_in(importer, "baselines") and _in(target, "fusion")):
            problems.append(f"(b) {where}: {importer} imports {target} (fusion and baselines stay apart)")
        # tiktalk.models and the ground floor: every tiktalk module below the run layer
        lower_floor = _in(importer, "tiktalk") and not any(_in(importer, upper) for upper in (*COMMAND_LAYER, RUN_LAYER))
        if lower_floor and any(_in(target, upper) for upper in ("fusion", "baselines", "retrieval", "kg")):
            problems.append(f"(c) {where}: {importer} (tiktalk's lower floors) imports {target}")
        if _in(target, RUN_LAYER) and not any(_in(importer, upper)
                                              for upper in (*COMMAND_LAYER, RUN_LAYER, "benchmarks")):
            problems.append(f"(g) {where}: library module {importer} imports the run layer ({target})")
    return problems


def command_violations(edges: list[Edge]) -> list[str]:
    """(e): an edge from one command module to another."""
    return [f"(e) {where}: command module {importer} imports command module {target}"
            for importer, target, where in edges
            if _in(importer, "tiktalk.commands") and _in(target, "tiktalk.commands")
            and importer != "tiktalk.commands" and target != "tiktalk.commands"]


def cli_reentries(modules: dict[str, Path], root: Path) -> list[str]:
    """(f): calls of ``_cli(...)`` or of ``main([...])`` / ``main(argv=[...])`` with a literal argv."""
    found = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            argv = [*node.args, *(k.value for k in node.keywords)]
            if func == "_cli" or (func == "main" and any(isinstance(a, (ast.List, ast.Tuple)) for a in argv)):
                found.append(f"(f) {path.relative_to(root)}:{node.lineno}: {name} re-enters the CLI ({func}(...))")
    return found


def import_cycles(edges: list[Edge]) -> list[list[str]]:
    """One cycle (as a list of 'module (file:line)' steps) per strongly connected component."""
    graph: dict[str, dict[str, str]] = {}
    for importer, target, where in edges:
        graph.setdefault(importer, {}).setdefault(target, where)
        graph.setdefault(target, {})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan; the graph is small, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for component in components:
        members = set(component)
        start = min(component)
        # breadth-first from start back to start inside the component: a shortest cycle
        parent: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in parent:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w in members and w not in parent:
                        parent[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        while True:
            path.append(parent[path[-1]])
            if path[-1] == start:
                break
        path.reverse()
        cycles.append([f"{a} ({graph[a][b]})" for a, b in pairwise(path)] + [start])
    return cycles


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_edges(find_modules(ROOT, PACKAGES), ROOT)


def test_modules_are_found(edges: list[Edge]) -> None:
    modules = find_modules(ROOT, PACKAGES)
    assert {"kg.readers", "retrieval.encoders", "fusion.modeling_maria", "baselines._common",
            "tiktalk.registry", "tiktalk.models.base", "tiktalk.commands.main", "benchmarks.common"} <= set(modules)
    assert not any(".data." in m for m in modules)  # generator scripts in data folders are no modules
    importers = {e[0] for e in edges}
    assert {"kg.convert", "tiktalk.commands.main", "fusion.modeling_maria"} <= importers


def test_layers(edges: list[Edge]) -> None:
    problems = layer_violations(edges)
    assert not problems, "\n".join(problems)


def test_commands_import_no_command_and_nothing_reenters_the_cli(edges: list[Edge]) -> None:
    problems = command_violations(edges) + cli_reentries(find_modules(ROOT, PACKAGES), ROOT)
    assert not problems, "\n".join(problems)


def test_no_import_cycles(edges: list[Edge]) -> None:
    cycles = import_cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


# ---------------------------------------------------------------- the checker finds what it should


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    _write(tmp_path, {
        "tiktalk/__init__.py": "",
        "tiktalk/io.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import kg.graph\n",
        "tiktalk/models/__init__.py": "",
        "tiktalk/models/base.py": "def f():\n    from fusion import modeling\n",
        "tiktalk/dataset/__init__.py": "", "tiktalk/dataset/loader.py": "import retrieval\n",
        "tiktalk/runs/__init__.py": "", "tiktalk/runs/training.py": "import fusion.modeling\n",
        "retrieval/__init__.py": "def f():\n    from tiktalk.runs import training\n",
        "tiktalk/commands/__init__.py": "",
        "tiktalk/commands/main.py": "from . import kg\nfrom tiktalk.runs import training\n",
        "tiktalk/commands/kg.py": "",
        "tiktalk/__main__.py": "from tiktalk.commands.main import main\n",
        "kg/__init__.py": "from kg.graph import C3KG\n",
        "kg/graph.py": "def g():\n    from kg.convert import x\n",
        "kg/convert.py": "from .graph import C3KG\nimport tiktalk.commands.kg\n",
        "kg/data/make.py": "import tiktalk.commands\n",
        "fusion/__init__.py": "", "fusion/modeling.py": "import baselines.dialogpt\n",
        "baselines/__init__.py": "", "baselines/dialogpt.py": "",
    })
    modules = find_modules(tmp_path, ("tiktalk", "kg", "fusion", "baselines", "retrieval"))
    assert "kg.data.make" not in modules
    found = import_edges(modules, tmp_path)
    assert ("tiktalk.commands.main", "tiktalk.commands.kg", "tiktalk/commands/main.py:1") in found  # relative
    problems = "\n".join(layer_violations(found))
    assert "(a) kg/convert.py:2: library module kg.convert imports the command layer" in problems
    assert "tiktalk/__main__.py" not in problems
    assert "(b) fusion/modeling.py:1" in problems
    assert "(c) tiktalk/io.py:3: tiktalk.io" in problems  # under TYPE_CHECKING
    assert "(c) tiktalk/models/base.py:2: tiktalk.models.base" in problems  # inside a function
    assert "(c) tiktalk/dataset/loader.py:1: tiktalk.dataset.loader" in problems  # a ground-floor package
    assert "tiktalk/runs/training.py" not in problems  # the run layer may import the library
    assert "(g) retrieval/__init__.py:2: library module retrieval imports the run layer" in problems
    assert "tiktalk/commands/main.py" not in problems  # the commands call the run layer
    cycles = import_cycles(found)
    assert cycles == [["kg.convert (kg/convert.py:1)", "kg.graph (kg/graph.py:2)", "kg.convert"]]


def test_checker_sees_command_imports_and_cli_reentry(tmp_path: Path) -> None:
    _write(tmp_path, {
        "tiktalk/__init__.py": "",
        "tiktalk/commands/__init__.py": "",
        "tiktalk/commands/main.py": "def main(argv=None):\n    return 0\n",
        "tiktalk/commands/probe.py": "from tiktalk.commands import emit\ndef f():\n    from tiktalk.commands.train import x\n",
        "tiktalk/commands/train.py": "",
        "tiktalk/runs/__init__.py": "",
        "tiktalk/runs/x.py": "def f(main, _cli):\n    main(['train'])\n    _cli('generate')\n    main()\n",
    })
    modules = find_modules(tmp_path, ("tiktalk",))
    problems = command_violations(import_edges(modules, tmp_path))
    assert problems == [("(e) tiktalk/commands/probe.py:3: command module tiktalk.commands.probe imports command "
                         "module tiktalk.commands.train")]
    assert cli_reentries(modules, tmp_path) == [
        "(f) tiktalk/runs/x.py:2: tiktalk.runs.x re-enters the CLI (main(...))",
        "(f) tiktalk/runs/x.py:3: tiktalk.runs.x re-enters the CLI (_cli(...))"]
