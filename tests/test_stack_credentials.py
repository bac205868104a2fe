"""stack.credentials without servers: a stack made before a secret was added gets it once,
and keeps it."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from stack import credentials


def test_a_secret_added_since_is_made_once_and_kept_beside_the_old_ones(tmp_path: Path):
    """credentials.json of a stack from before supervisord ran it lacks supervisord's
    password: the first load makes one and writes it (mode 0600), later loads read it, and
    every older secret stays as it was."""
    made = asdict(credentials.load_or_create(tmp_path))
    path = credentials.folder_of(tmp_path) / "credentials.json"
    older = {key: value for key, value in made.items() if key != "supervisor_password"}
    credentials.write_secret(path, json.dumps(older))

    loaded = asdict(credentials.load(tmp_path))
    assert {key: loaded[key] for key in older} == older
    assert loaded["supervisor_password"] not in ("", made["supervisor_password"])
    assert asdict(credentials.load(tmp_path)) == loaded
    assert json.loads(path.read_text()) == loaded
    assert path.stat().st_mode & 0o777 == 0o600
