"""`mlflow models serve` of the registry's champion answers with the DVC detector's scores:
a real server on 127.0.0.1, real test digits posted to /invocations."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import VENV_BIN, answers_http, command_env, free_port, wait_until

from aelab.core import paths
from aelab.data import digits
from aelab.serving import detector

pytestmark = pytest.mark.slow


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def test_the_served_champion_answers_as_the_dvc_detector(small: Path):
    """The session pipeline's log stage registered the champion in its default store."""
    store = f"sqlite:///{small / 'mlflow.db'}"
    port, log = free_port(), small / "serve.log"
    command = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/aelab-anomaly@champion",
               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    env = command_env(small, MLFLOW_TRACKING_URI=store)
    with open(log, "w") as output:
        server = subprocess.Popen(command, cwd=small, env=env, stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers_http(f"{url}/ping") or server.poll() is not None, 120,
                   "mlflow models serve")  # fmt: skip
        assert server.poll() is None, f"mlflow models serve stopped:\n{log.read_text()}"
        test = digits.load(small / paths.split_file("test"), digits.SplitSet, fix="")
        images = test.images[:200]
        expected = detector.load(small / paths.DETECTOR_DIR).answers(images)
        for body in ({"inputs": images.tolist()},  # N x 28 x 28 integers
                     {"inputs": (images.reshape(len(images), -1) / 255).tolist()}):  # fmt: skip
            answers = post(f"{url}/invocations", body)["predictions"]
            np.testing.assert_allclose([a["score"] for a in answers], expected["score"],
                                       rtol=1e-6)  # fmt: skip
            assert [a["is_anomaly"] for a in answers] == list(expected["is_anomaly"])
            assert [a["cluster"] for a in answers] == list(expected["cluster"])
    finally:
        os.killpg(server.pid, 15)  # the server and its workers
        server.wait(timeout=30)
