"""models/<variant>/ on disk: a round trip, and every kind of bad file refused in one line."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
import torch
from test_models import config, digits_like

from aelab.core.errors import AelabError
from aelab.models import build_model
from aelab.models.checkpoints import load_checkpoint, save_checkpoint


def one_line(path: Path, problem: str) -> str:
    """A pytest.raises match for the whole message about `path` (models/vae/seed_0/<file>):
    `problem` (a regular expression), then how to get the checkpoint back (from the project
    root, whatever folder the project is in)."""
    fix = "run `dvc repro -f train@vae` (or `dvc checkout models/vae`)"
    return f"^{re.escape(str(path))}: {problem}; {re.escape(fix)}\\Z"


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model(config("vae"))
    folder = tmp_path / "models" / "vae" / "seed_0"
    save_checkpoint(folder, "vae", model, [{"epoch": 1, "train_loss": 0.5, "val_loss": 0.4}])
    return folder, model


def test_round_trip_gives_the_same_model(saved):
    folder, model = saved
    loaded = load_checkpoint(folder)
    x = digits_like(8)
    model.eval()
    assert torch.equal(loaded.encode(x), model.encode(x))
    assert json.loads((folder / "config.json").read_text())["beta"] == 1.0
    assert (folder / "history.csv").read_text() == "epoch,train_loss,val_loss\n1,0.5,0.4\n"


def test_weights_are_a_plain_state_dict(saved):
    folder, model = saved
    state = torch.load(folder / "model.pt", weights_only=True)
    assert set(state) == set(model.state_dict())


def test_same_model_same_bytes(tmp_path: Path, saved):
    folder, model = saved
    save_checkpoint(
        tmp_path / "again", "vae", model, [{"epoch": 1, "train_loss": 0.5, "val_loss": 0.4}]
    )
    for name in ("model.pt", "config.json", "history.csv"):
        assert (folder / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


class Exploit:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_checkpoint_with_pickled_code_is_refused(saved, capsys):
    folder, _ = saved
    torch.save({"weights": Exploit()}, folder / "model.pt")
    refused = r"not a valid state dict \(Weights only load failed\. [^\n]*\)"
    with pytest.raises(AelabError, match=one_line(folder / "model.pt", refused)):
        load_checkpoint(folder)
    assert "pickled code ran" not in capsys.readouterr().out


def other_kind(path: Path) -> None:
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "kind": "gan"}))


@pytest.mark.parametrize(
    ("file", "damage", "problem"),
    [
        ("model.pt", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
         r"not a valid state dict \(PytorchStreamReader failed reading zip archive[^\n]*\)"),
        ("model.pt", lambda p: p.write_bytes(b"garbage"),
         r"not a valid state dict \(Weights only load failed\.[^\n]*\)"),
        ("model.pt", lambda p: p.unlink(), "file not found"),
        ("model.pt", lambda p: torch.save({"other": torch.zeros(3)}, p),
         r"not a valid state dict \(Error\(s\) in loading state_dict for VariationalAutoencoder: "
         r"Missing key\(s\) in state_dict: [^\n]*\)"),
        ("config.json", lambda p: p.write_text("{not json"),
         r"unreadable \(Expecting property name enclosed in double quotes: line 1 column 2 "
         r"\(char 1\)\)"),
        ("config.json", other_kind, r"unreadable \('gan'\)"),
        ("config.json", lambda p: p.write_text(json.dumps({"name": "vae", "kind": "vae"})),
         r"unreadable \('weights_sha256'\)"),
        ("config.json", lambda p: p.unlink(), "file not found"),
    ],
    ids=["truncated", "garbage", "missing", "other-keys", "bad-json", "bad-kind", "no-checksum",
         "no-config"],
)  # fmt: skip
def test_damaged_checkpoint_is_one_line_naming_file_and_fix(saved, file, damage, problem):
    folder, _ = saved
    damage(folder / file)
    with pytest.raises(AelabError, match=one_line(folder / file, problem)) as caught:
        load_checkpoint(folder)
    assert "\n" not in str(caught.value)


def test_weights_that_load_but_are_not_the_saved_ones_are_refused(saved):
    folder, _ = saved
    state = torch.load(folder / "model.pt", weights_only=True)
    torch.save({key: value + 1 for key, value in state.items()}, folder / "model.pt")
    problem = re.escape("its sha256 is not the one in config.json (damaged or replaced)")
    with pytest.raises(AelabError, match=one_line(folder / "model.pt", problem)):
        load_checkpoint(folder)


def test_failed_save_leaves_no_folder(tmp_path: Path):
    model = build_model(config("ae"))
    # After the weights are written: history rows must be dicts.
    with pytest.raises(AttributeError, match=r"^'list' object has no attribute 'keys'\Z"):
        save_checkpoint(tmp_path / "models" / "ae", "ae", model, [["not", "a", "row"]])
    assert list((tmp_path / "models").iterdir()) == []


def test_the_staging_folder_is_a_hidden_dot_tmp_folder_beside_the_target(tmp_path, monkeypatch):
    staged = []
    real_save = torch.save

    def save(state, path):
        staged.append(Path(path).parent)
        real_save(state, path)

    monkeypatch.setattr(torch, "save", save)
    save_checkpoint(tmp_path / "models" / "ae", "ae", build_model(config("ae")), [])
    (staging,) = staged
    assert staging.parent == tmp_path / "models"
    assert staging.name.startswith(".ae.") and staging.name.endswith(".tmp")


def test_a_staging_folder_left_by_a_killed_run_goes_with_the_next_save(tmp_path: Path):
    models = tmp_path / "models"
    for leftover in (".ae.xyz.tmp", ".ae_l1.xyz.tmp"):  # ae's, and another variant's
        (models / leftover).mkdir(parents=True)
        (models / leftover / "model.pt").write_bytes(b"half")
    save_checkpoint(models / "ae", "ae", build_model(config("ae")), [])
    assert sorted(path.name for path in models.iterdir()) == [".ae_l1.xyz.tmp", "ae"]


def test_the_exploit_does_run_code_when_unpickled_unsafely(capsys):
    """So the refusal above is refusing something real."""
    pickle.loads(pickle.dumps(Exploit()))
    assert "pickled code ran" in capsys.readouterr().out
