"""dvc.lock files for the gate's tests: the stages evaluate's data comes from, as DVC
writes them (schema 2.0, `foreach` stages as extract@<variant>, a folder's md5 ending in
`.dir`), with made-up hashes."""

from __future__ import annotations

import hashlib

import yaml

VARIANTS = ("ae", "dae")


def folder_md5(*parts: object) -> str:
    """A made-up folder hash that changes with `parts`, as DVC's does with the files."""
    return hashlib.md5(repr(parts).encode()).hexdigest() + ".dir"


def lock(
    metrics: bytes,
    test: str = "test-1",
    features: dict[str, str] | None = None,
    generated: str = "generated-1.dir",
    knn_k: int = 1,
    evaluation_code: str = "code-1",
) -> str:
    """dvc.lock's text: split, extract@<variant>, generate and evaluate, evaluate having
    written `metrics` (its md5 recorded) with `evaluate.knn.k` = knn_k."""
    features = features if features is not None else {v: f"{v}-1.dir" for v in VARIANTS}
    split_files = {"data/split/test.npz": test, "data/split/train.npz": "train-1"}
    stages = {
        "split": {"cmd": "python -m stages split", "outs": _outs(split_files)},
        **{
            f"extract@{variant}": {
                "cmd": f"python -m stages extract --variant {variant}",
                "deps": _outs({f"models/{variant}": f"m-{md5}"}),
                "outs": _outs({f"data/features/{variant}": md5}),
            }
            for variant, md5 in features.items()
        },  # fmt: skip
        "generate": {
            "cmd": "python -m stages generate",
            "outs": _outs({"data/generated": generated}),
        },  # fmt: skip
        "evaluate": {
            "cmd": "python -m stages evaluate",
            "deps": _outs(
                {
                    "data/features": folder_md5(sorted(features.items())),
                    "data/generated": generated,
                    "data/split": folder_md5(sorted(split_files.items())),
                    "src/aelab/reports/evaluation.py": evaluation_code,
                }
            ),  # fmt: skip
            "params": {"params.yaml": {"evaluate": {"knn": {"k": knn_k}}}},
            "outs": _outs({"reports/metrics.json": hashlib.md5(metrics).hexdigest()}),
        },
    }
    return yaml.safe_dump({"schema": "2.0", "stages": stages}, sort_keys=False)


def stages(metrics: bytes = b"{}", **changes) -> dict:
    """The `stages:` of `lock(metrics, **changes)`."""
    return yaml.safe_load(lock(metrics, **changes))["stages"]


def _outs(hashes: dict[str, str]) -> list[dict]:
    return [{"path": path, "hash": "md5", "md5": md5} for path, md5 in hashes.items()]
