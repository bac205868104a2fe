"""aelab.data.history: a checkpoint's loss history read back as written, or refused in one
line."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_checkpoints import one_line
from test_models import config

from aelab.core.errors import AelabError
from aelab.data.history import history_csv, read_history
from aelab.models import build_model
from aelab.models.checkpoints import save_checkpoint

HISTORY = [{"epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "val_mse": 0.03125},
           {"epoch": 2, "train_loss": 0.25, "val_loss": 0.2, "val_mse": 0.1 + 0.2}]  # fmt: skip


def test_a_history_reads_back_as_fit_returned_it_and_writes_back_the_same_text(tmp_path: Path):
    folder = tmp_path / "models" / "vae" / "seed_0"
    save_checkpoint(folder, "vae", build_model(config("vae")), HISTORY)
    read = read_history(folder)
    assert read == HISTORY and [type(row["epoch"]) for row in read] == [int, int]
    assert history_csv(read) == (folder / "history.csv").read_text()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("epoch,train_loss,val_loss,val_mse\n1,0.5,0.4\n", r"unreadable \(float\(\) argument .*\)"),
        ("epoch,train_loss,val_loss,val_mse\n1,0.5,0.4,x\n", r"unreadable \(could not .*\)"),
        ("epoch,train_loss,val_loss,val_mse\n", r"no epochs or no \[.*\] columns"),
        ("epoch,train_loss\n1,0.5\n", r"no epochs or no \['epoch', 'train_loss', 'val_loss', "
                                      r"'val_mse'\] columns"),
        (b"\xff\xfe epoch", r"unreadable \('utf-8' codec can't decode .*\)"),
        (None, "file not found"),
    ],
    ids=["row-cut-short", "not-a-number", "no-epochs", "no-losses", "not-utf8", "missing"],
)  # fmt: skip
def test_a_damaged_history_is_one_line_naming_it_and_the_fix(tmp_path: Path, text, problem):
    folder = tmp_path / "models" / "vae" / "seed_0"
    folder.mkdir(parents=True)
    path = folder / "history.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(AelabError, match=one_line(path, problem)):
        read_history(folder)
