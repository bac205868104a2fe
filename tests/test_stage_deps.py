"""dvc.yaml's code deps are each stage's imports: every project module a stage's `cmd`
imports (through stages/ and src/) is covered by one of its deps, and every code dep
covers only modules it imports (tests/stage_imports.py computes the closures). Its params,
data deps and outputs are what the stage read and wrote while the session pipeline ran
(tests/stage_reads.py). So `dvc status` reruns a stage exactly when what it uses changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from stage_imports import (
    ROOT,
    absolute_name,
    closure,
    code_files,
    relative,
    shortest_deps,
    stage_modules,
)
from stage_reads import body_of, recorded
from stage_reads import problems as declaration_problems

CODE_ROOTS = ("src/", "stages/")


def problems(dvc_file: Path) -> list[str]:
    """One line per stage whose code deps miss an import or list code it does not import."""
    found = []
    for stage, (modules, deps) in stage_modules(dvc_file).items():
        imported = closure(*modules)
        code = [dep for dep in deps if dep.startswith(CODE_ROOTS)]
        covered = set().union(*(_files(dep) for dep in code))
        missing = sorted(relative(path) for path in imported - covered)
        if missing:
            found.append(f"{stage}: imports {missing} but does not depend on them")
        extra = [dep for dep in code if not _files(dep) <= imported]
        if extra:
            found.append(f"{stage}: depends on {extra}, which hold code it does not import")
    return found


def edited_dvc(tmp_path: Path, change: Callable[[dict], None]) -> Path:
    """A copy of dvc.yaml in tmp_path with `change` applied to its stages."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    change(dvc["stages"])
    edited = tmp_path / "dvc.yaml"
    edited.write_text(yaml.safe_dump(dvc))
    return edited


def _files(dep: str) -> set[Path]:
    path = ROOT / dep
    return code_files(path) if path.is_dir() else {path}


def test_every_stage_depends_on_exactly_the_code_it_imports():
    found = problems(ROOT / "dvc.yaml")
    hint = "`python tests/stage_imports.py` prints each stage's deps"
    assert not found, "\n".join([*found, hint])


@pytest.mark.parametrize("stage", ["train", "evaluate", "log"])
def test_a_deleted_dep_is_caught(stage: str, tmp_path: Path):
    edited = edited_dvc(tmp_path, lambda stages: body_of(stages, stage)["deps"].remove(
        "src/aelab/core"))  # fmt: skip
    assert any(line.startswith(f"{stage}: imports ['src/aelab/core/") for line in problems(edited))


def test_a_dep_on_code_the_stage_does_not_import_is_caught(tmp_path: Path):
    edited = edited_dvc(tmp_path, lambda stages: stages["download"]["deps"].append(
        "src/aelab/reports/summary.py"))  # fmt: skip
    assert "download: depends on ['src/aelab/reports/summary.py']" in problems(edited)[0]


def test_the_closure_follows_function_level_imports_and_skips_type_checking_ones():
    """aelab.tracking.store imports aelab.serving.pyfunc inside a function (the model it
    logs); aelab.reports.figure_files imports aelab.core.params only for type checking."""
    assert ROOT / "src/aelab/serving/pyfunc.py" in closure("aelab.tracking.store")
    assert ROOT / "src/aelab/core/params.py" not in closure("aelab.reports.figure_files")


def test_relative_imports_count_as_the_modules_they_name():
    """`from . import x` in aelab/reports/figures.py is aelab.reports(.x), `from ..core.paths
    import y` aelab.core.paths; in a package's __init__.py `.` is the package itself."""
    module = ROOT / "src/aelab/reports/figures.py"
    assert absolute_name(module, 1, None) == "aelab.reports"
    assert absolute_name(module, 2, "core.paths") == "aelab.core.paths"
    assert absolute_name(ROOT / "src/aelab/reports/__init__.py", 1, "gate") == "aelab.reports.gate"


def test_shortest_deps_name_a_folder_only_when_every_module_in_it_is_imported():
    deps = shortest_deps(closure("stages.train"))
    assert "src/aelab/models" in deps and "src/aelab/training/loop.py" in deps
    assert "src/aelab/training" not in deps


# Params and data: what each stage read and wrote while the session pipeline ran.


@pytest.fixture(scope="module")
def records(small_pipeline: Path) -> dict:
    return recorded(small_pipeline.parent / "record")


@pytest.mark.slow
def test_every_stage_declares_the_params_and_files_it_reads_and_writes(records: dict):
    assert set(records) >= {"download", "train@ae", "extract@pca", "evaluate", "summary", "log"}
    found = declaration_problems(ROOT / "dvc.yaml", records)
    assert not found, "\n".join(found)


def _edited(tmp_path: Path, stage: str, section: str, entry: str) -> Path:
    """dvc.yaml without `entry` in `stage`'s `section` (params, deps, outs)."""

    def remove(stages: dict) -> None:
        body = body_of(stages, stage)
        body[section] = [e for e in body[section] if e != entry and not (
            isinstance(e, dict) and entry in e)]  # fmt: skip

    return edited_dvc(tmp_path, remove)


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "section", "entry", "line"), [
    ("summary", "params", "generate.samplers",
     "summary: reads params ['generate.samplers'] that dvc.yaml does not list"),
    ("train", "params", "train", "train@ae: reads params ['train.arch', 'train.batch_size'"),
    ("generate", "deps", "data/split/val.npz",
     "generate: reads ['data/split/val.npz'], which are not among its deps"),
    ("log", "deps", "data/timings", "log: reads ['data/timings/train_ae.json'"),
    ("train", "outs", "data/timings/train_${key}.json",
     "train@ae: writes ['data/timings/train_ae.json'], which are not among its outputs"),
])  # fmt: skip
def test_a_param_or_file_missing_from_dvc_yaml_is_caught(
    records: dict, tmp_path: Path, stage: str, section: str, entry: str, line: str
):
    found = declaration_problems(_edited(tmp_path, stage, section, entry), records)
    assert any(problem.startswith(line) for problem in found), found


@pytest.mark.slow
def test_a_data_dep_the_stage_does_not_read_is_caught(records: dict, tmp_path: Path):
    edited = edited_dvc(tmp_path, lambda stages: stages["summary"]["deps"].append(
        "data/features"))  # fmt: skip
    assert "summary: depends on ['data/features'], which it does not read" in (
        declaration_problems(edited, records))  # fmt: skip
