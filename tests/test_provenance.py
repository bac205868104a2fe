"""What each metric was computed from: exact, paired or unpaired, from two dvc.lock files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import commit, run
from locks import folder_md5, lock, stages

from aelab.reports import provenance
from aelab.reports.gate import provenance_of
from aelab.reports.provenance import (
    EXACT,
    PAIRED,
    UNPAIRED,
    Revision,
    cache_listing,
    changed_files,
    data_deps,
    judge_bases,
    read_stages,
)

METRICS = b'{"ae": {"roc_auc": 0.85}}'
VARIANTS = {"ae", "dae", "pixels"}
GENERATED_OLD = {"ae/seed_0.npz": "a0", "dae/seed_0.npz": "d0", "real.npz": "r0"}


def bases(old: dict, new: dict, listing=None) -> dict[str, str]:
    """Each variant's basis between two locks built by `locks.lock`."""
    provenance = judge_bases(Revision(stages(METRICS, **old), METRICS),
                             Revision(stages(METRICS, **new), METRICS),
                             "reports/metrics.json", VARIANTS, listing)  # fmt: skip
    assert not provenance.unknown
    return {variant: provenance.basis(variant) for variant in sorted(VARIANTS)}


def listing_of(folders: dict[str, dict[str, str]]):
    """A cache holding these folders' listings: {md5: {relpath: md5}}."""
    return folders.get


def test_evaluate_reads_data_and_code_and_only_data_counts():
    deps = data_deps(stages(METRICS), "evaluate")
    assert sorted(deps) == ["data/features", "data/generated", "data/split"]


def test_an_evaluation_change_leaves_every_metric_exact():
    """Another evaluate param and other evaluation code: the data is byte-identical."""
    assert bases({}, {"knn_k": 25, "evaluation_code": "code-2"}) == {
        "ae": EXACT, "dae": EXACT, "pixels": EXACT}  # fmt: skip


def test_a_retrained_variant_is_paired_and_the_others_stay_exact():
    """dae's features and generated files changed; the generated folder's listing (from
    DVC's cache) shows ae's files and real.npz unchanged."""
    new = {"features": {"ae": "ae-1.dir", "dae": "dae-2.dir"}, "generated": "generated-2.dir"}
    retrained = {**GENERATED_OLD, "dae/seed_0.npz": "d1"}
    listing = listing_of({"generated-1.dir": GENERATED_OLD, "generated-2.dir": retrained})
    assert bases({}, new, listing) == {"ae": EXACT, "dae": PAIRED, "pixels": EXACT}


def test_without_the_folders_listing_a_changed_folder_changed_for_every_variant():
    new = {"features": {"ae": "ae-1.dir", "dae": "dae-2.dir"}, "generated": "generated-2.dir"}
    assert bases({}, new) == {"ae": PAIRED, "dae": PAIRED, "pixels": PAIRED}
    half = listing_of({"generated-2.dir": GENERATED_OLD})  # the baseline's is not cached
    assert bases({}, new, half) == {"ae": PAIRED, "dae": PAIRED, "pixels": PAIRED}


def test_the_shared_real_digits_changed_for_everyone():
    """A retrained classifier rewrites real.npz: every variant and the pixels read it."""
    listing = listing_of({"generated-1.dir": GENERATED_OLD,
                          "generated-2.dir": {**GENERATED_OLD, "real.npz": "r1"}})  # fmt: skip
    assert bases({}, {"generated": "generated-2.dir"}, listing) == {
        "ae": PAIRED, "dae": PAIRED, "pixels": PAIRED}  # fmt: skip


def test_other_test_digits_fall_back_to_unpaired():
    """A changed split: both runs were not scored on the same digits."""
    assert bases({}, {"test": "test-2"}) == {"ae": UNPAIRED, "dae": UNPAIRED, "pixels": UNPAIRED}


def test_an_added_variant_changes_only_its_own_metrics():
    new = {"features": {"ae": "ae-1.dir", "dae": "dae-1.dir", "vae": "vae-1.dir"}}
    found = judge_bases(Revision(stages(METRICS), METRICS),
                        Revision(stages(METRICS, **new), METRICS),
                        "reports/metrics.json", VARIANTS | {"vae"})  # fmt: skip
    assert found.bases == {"ae": EXACT, "dae": EXACT, "pixels": EXACT, "vae": PAIRED}


def test_a_folder_that_differs_unexplained_changed_for_everyone():
    """evaluate read another data/features than its producers' outputs say (a file no
    stage made): all of it counts as changed."""
    old, new = stages(METRICS), stages(METRICS)
    new["evaluate"]["deps"][0]["md5"] = folder_md5("a stray file")
    assert changed_files(old, new, "evaluate", lambda md5: None) == {
        "data/features": "data/features"}  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (Revision(None, METRICS), Revision(stages(METRICS), METRICS), "the baseline"),
        (Revision(stages(METRICS), METRICS), Revision(stages(b"{}"), METRICS), "the workspace"),
        (Revision(stages(METRICS), None), Revision(stages(METRICS), METRICS), "the baseline"),
    ],
)
def test_a_lock_that_does_not_record_the_metrics_knows_nothing(old, new, reason):
    """No lock, or metrics written outside `dvc repro` (their md5 differs from the lock's)."""
    found = judge_bases(old, new, "reports/metrics.json", VARIANTS)
    assert found.bases == {} and found.basis("ae") == UNPAIRED
    assert found.unknown == (
        f"the dvc.lock of {reason} does not record its reports/metrics.json (none, or "
        "written outside `dvc repro`)"
    )


def test_unreadable_locks_are_none():
    assert read_stages(None) is None
    assert read_stages(b"stages: [") is None
    assert read_stages(b"- a list") is None
    assert read_stages(lock(METRICS).encode())["evaluate"]["cmd"] == "python -m stages evaluate"


def test_a_folder_listing_is_read_from_dvc_caches_of_both_layouts(tmp_path: Path):
    entries = [{"md5": "a0", "relpath": "ae/seed_0.npz"}, {"md5": "r0", "relpath": "real.npz"}]
    modern = tmp_path / "files" / "md5" / "ab" / "cdef.dir"  # DVC 3
    modern.parent.mkdir(parents=True)
    modern.write_text(json.dumps(entries))
    legacy = tmp_path / "12" / "3456.dir"  # DVC 2
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps(entries[:1]))
    listing = cache_listing(tmp_path, tmp_path)
    assert listing("abcdef.dir") == {"ae/seed_0.npz": "a0", "real.npz": "r0"}
    assert listing("123456.dir") == {"ae/seed_0.npz": "a0"}
    assert listing("ffffff.dir") is None


def test_the_baseline_is_read_through_git(tmp_path: Path):
    """Two commits of dvc.lock and the metrics; the workspace changes an evaluate param."""
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "metrics.json").write_bytes(METRICS)
    (tmp_path / "dvc.lock").write_text(lock(METRICS))
    run(["git", "init", "-q"], cwd=tmp_path)
    commit(tmp_path)
    changed = b'{"ae": {"roc_auc": 0.83}}'
    (tmp_path / "reports" / "metrics.json").write_bytes(changed)
    (tmp_path / "dvc.lock").write_text(lock(changed, knn_k=25))
    found = provenance_of(tmp_path, "HEAD", "reports/metrics.json", {"ae", "dae"})
    assert (found.bases, found.unknown) == ({"ae": EXACT, "dae": EXACT}, "")
    (tmp_path / "dvc.lock").write_text(lock(METRICS, knn_k=25))  # a stale lock
    assert provenance_of(tmp_path, "HEAD", "reports/metrics.json", {"ae"}).basis("ae") == UNPAIRED


def test_a_variant_named_like_a_folder_above_its_files_owns_nothing_there():
    """Ownership is read below the dependency: a variant called `split` does not make the
    split files its own, so another variant still reads them."""
    found = judge_bases(Revision(stages(METRICS), METRICS),
                        Revision(stages(METRICS, test="test-2"), METRICS),
                        "reports/metrics.json", {"ae", "split"})  # fmt: skip
    assert found.bases == {"ae": UNPAIRED, "split": UNPAIRED}


def test_the_projects_cache_is_read_before_dvc_is_asked_for_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """.dvc/cache first; `dvc cache dir` (a shared cache) only for what is not there."""
    shared = tmp_path / "shared"
    for cache, name, entries in ((tmp_path / ".dvc" / "cache", "abcdef", {"a": "1"}),
                                 (shared, "123456", {"b": "2"})):  # fmt: skip
        listing = cache / "files" / "md5" / name[:2] / f"{name[2:]}.dir"
        listing.parent.mkdir(parents=True)
        listing.write_text(json.dumps([{"md5": m, "relpath": r} for r, m in entries.items()]))
    asked = []
    monkeypatch.setattr(provenance, "dvc_cache", lambda root: asked.append(root) or shared)
    listing = cache_listing(tmp_path)
    assert (listing("abcdef.dir"), asked) == ({"a": "1"}, [])
    assert (listing("123456.dir"), asked) == ({"b": "2"}, [tmp_path])  # the project's DVC
    assert (listing("ffffff.dir"), asked) == (None, [tmp_path])  # asked once
