"""Which of the project's own modules each DVC stage imports: the closure of the imports
of its `cmd`'s modules (`python -m stages <name>`: stages/__main__.py and stages/<name>.py)
through stages/ and src/, read from the source (function-level imports
included, `if TYPE_CHECKING:` blocks left out). tests/test_stage_deps.py holds dvc.yaml's
deps to it; `python tests/stage_imports.py` prints each stage's closure."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (ROOT / "src", ROOT)  # where `aelab.*` and `stages.*` live


def module_file(name: str) -> Path | None:
    """The project file of module `name` (a package's __init__.py), or None: not ours."""
    parts = name.split(".")
    for base in SOURCES:
        for candidate in (base.joinpath(*parts).with_suffix(".py"),
                          base.joinpath(*parts, "__init__.py")):  # fmt: skip
            if candidate.is_file() and parts[0] in ("aelab", "stages"):
                return candidate
    return None


def imported_names(path: Path) -> set[str]:
    """Every module `path` may import, run-time imports only; relative ones (`from . import
    x`, `from ..core import paths`) as the absolute names they stand for."""
    names: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = absolute_name(path, node.level, node.module)
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}  # submodules
    return names


def absolute_name(path: Path, level: int, module: str | None) -> str:
    """The absolute name of `from <level dots><module> import ...` in the file `path`."""
    if level == 0:
        return module or ""
    base = next(b for b in SOURCES if path.is_relative_to(b))
    package = list(path.relative_to(base).parent.parts)  # a module's or __init__'s package
    parent = package[: len(package) - (level - 1)]
    return ".".join([*parent, *([module] if module else [])])


def _runtime_nodes(tree: ast.AST):
    """The tree's nodes, skipping `if TYPE_CHECKING:` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def closure(*modules: str) -> set[Path]:
    """The project files that importing `modules` runs, their packages' __init__.py
    included."""
    seen: set[Path] = set()
    todo = set().union(*map(_with_packages, modules))
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None or path in seen:
            continue
        seen.add(path)
        for imported in imported_names(path):
            todo |= _with_packages(imported)
    return seen


def _with_packages(name: str) -> set[str]:
    """`a.b.c` and the packages Python imports first: `a`, `a.b`."""
    parts = name.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def stage_modules(dvc_file: Path = ROOT / "dvc.yaml") -> dict[str, tuple[list[str], list[str]]]:
    """Each stage's modules (`python -m stages <name>` runs stages/__main__.py, then
    stages/<name>.py) and its deps, from dvc.yaml."""
    stages = yaml.safe_load(dvc_file.read_text())["stages"]
    found = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        module = re.search(r"python -m stages (\w+)", body["cmd"])
        if module is None:
            raise ValueError(f"stage {name}: its cmd is not `python -m stages <name>`")
        found[name] = (["stages.__main__", f"stages.{module.group(1)}"], body.get("deps", []))
    return found


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def code_files(folder: Path) -> set[Path]:
    """The Python files a folder dep covers (DVC hashes the rest too: there are none)."""
    return {path for path in folder.rglob("*.py") if "__pycache__" not in path.parts}


def shortest_deps(files: set[Path]) -> list[str]:
    """`files` as dvc.yaml deps: a folder wherever all of its code is in `files`, the
    top-most such folder below src/aelab and stages/; single files elsewhere."""
    deps: set[str] = set()
    for path in files:
        covering = path
        for folder in path.parents:
            if folder in (ROOT / "src" / "aelab", ROOT / "stages", ROOT / "src", ROOT):
                break
            if code_files(folder) <= files:
                covering = folder
        deps.add(relative(covering))
    return sorted(deps)


if __name__ == "__main__":
    for stage, (modules, _) in stage_modules().items():
        print(f"{stage} ({modules[-1]}):")
        print("".join(f"  - {dep}\n" for dep in shortest_deps(closure(*modules))), end="")
    sys.exit(0)
