"""The import rules of docs/architecture.md, checked on the package as it is."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "geoseg"
TF_LAYER = "model and training"
TF_FREE_IN_TF_LAYER = {"model.predictor", "model.quantize", "model.runtimes"}


def documented_layers() -> list[tuple[str, set[str]]]:
    """(layer, modules) from the table in docs/architecture.md, top to bottom."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("<!-- layers:start -->")[1].split("<!-- layers:end -->")[0]
    layers = []
    for line in table.strip().splitlines()[2:]:
        name, modules = (cell.strip() for cell in line.strip("|").split("|")[:2])
        layers.append((name, set(re.findall(r"`([\w.*]+)`", modules))))
    return layers


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(relative.parts)


def layer_of(module: str, layers: list[tuple[str, set[str]]]) -> int:
    for index, (_, modules) in enumerate(layers):
        if module in modules or any(m.endswith(".*") and module.startswith(m[:-1])
                                    for m in modules):
            return index
    raise AssertionError(f"geoseg.{module} is in no layer of docs/architecture.md")


def imports(path: Path, top_level_only: bool) -> set[str]:
    """Absolute module names a file imports (at module level, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports are for types only
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def test_the_layout_table_lists_every_folder_of_the_package():
    text = (ROOT / "docs" / "architecture.md").read_text()
    layout = text.split("## Layout")[1].split("## Layers")[0]
    documented = set(re.findall(r"^\| `geoseg/(\w+)/`", layout, flags=re.MULTILINE))
    folders = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert documented == folders


def test_every_owner_the_tables_name_exists():
    """`module.name` references in the owner table and the path of a scene resolve."""
    import importlib

    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for name in sorted(set(re.findall(r"`((?:[a-z_]+\.)+[A-Za-z_]\w*)", text.split(
            "## One owner per concept")[1]))):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                found: object = importlib.import_module("geoseg." + ".".join(parts[:cut]))
                break
            except ImportError:
                continue
        else:
            missing.append(name)
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                missing.append(name)
                break
            found = getattr(found, attribute)
    assert missing == []


def test_every_module_is_in_the_table():
    layers = documented_layers()
    for path in SOURCES:
        layer_of(module_name(path), layers)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_modules_import_only_their_layer_and_the_layers_above(path: Path):
    layers = documented_layers()
    own = layer_of(module_name(path), layers)
    for name in imports(path, top_level_only=True):
        if not name.startswith("geoseg."):
            continue
        target = name.removeprefix("geoseg.")
        candidates = [target, target.rsplit(".", 1)[0]]
        module = next((c for c in candidates if (PACKAGE / f"{c.replace('.', '/')}.py").exists()),
                      None)
        if module is None or module == "__init__":
            continue
        assert layer_of(module, layers) <= own, (
            f"geoseg.{module_name(path)} ({layers[own][0]}) imports geoseg.{module} "
            f"({layers[layer_of(module, layers)][0]}), which comes later in the table"
        )


def test_the_library_never_imports_click():
    cli_layer = documented_layers()[-1][1]
    for path in SOURCES:
        module = module_name(path)
        if module in cli_layer or module.startswith("commands."):
            continue
        assert not {n for n in imports(path, top_level_only=False) if n.split(".")[0] == "click"}, (
            f"geoseg.{module} imports click"
        )


def test_tensorflow_free_modules_load_without_tensorflow():
    layers = documented_layers()
    free = sorted(
        module for name, modules in layers[:-1] for module in modules
        if name != TF_LAYER or module in TF_FREE_IN_TF_LAYER
    )
    code = ("import sys\n" + "".join(f"import geoseg.{m}\n" for m in free)
            + "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]", f"TensorFlow or Keras loaded by one of {free}"


def test_the_public_api_resolves_and_stays_light():
    code = ("import sys, geoseg\n"
            "light = [n for n in geoseg.__all__ if n not in ('load_model', 'train_model')]\n"
            "for name in light:\n    getattr(geoseg, name)\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"
    import geoseg

    assert callable(geoseg.train_model) and callable(geoseg.load_model)


def every_import(path: Path) -> set[str]:
    """The geoseg modules a file names in any import statement: at module level, inside
    functions, under ``if TYPE_CHECKING:``, relative or absolute (``from geoseg import x``
    names the module ``x``)."""
    package = module_name(path).rsplit(".", 1)[0] if "." in module_name(path) else ""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's package, up level - 1 packages
                parts = ["geoseg", *package.split(".")] if package else ["geoseg"]
                base = ".".join(parts[:len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(known for name in names if (known := package_module(name)) is not None)
    return found


def package_module(name: str) -> str | None:
    """The geoseg module (without ``geoseg.``) that an imported name is, or is in."""
    if not name.startswith("geoseg."):
        return None
    parts = name.removeprefix("geoseg.").split(".")
    while parts:
        candidate = ".".join(parts)
        if (PACKAGE / f"{candidate.replace('.', '/')}.py").exists():
            return candidate
        parts.pop()
    return None


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), or of one module
    importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1 or module in graph.get(module, ()):
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycle_counting_every_import_statement():
    """No module reaches itself through imports, counting those in functions and under
    ``TYPE_CHECKING`` too: a cycle hidden that way is still a dependency both ways."""
    graph = {module_name(path): every_import(path) - {module_name(path)} for path in SOURCES}
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
