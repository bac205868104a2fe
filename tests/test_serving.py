"""`mlflow models serve` of the registry's champion answers with the DVC detector's scores:
a real server on 127.0.0.1, real test digits posted to /invocations."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import VENV_BIN, answers_http, command_env, copy_of, free_port, wait_until

from aelab.core import paths
from aelab.data import digits
from aelab.serving import detector

pytestmark = pytest.mark.slow


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope="module")
def small(small_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the session pipeline for the module: the server only reads it."""
    return copy_of(small_pipeline, tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def served(small: Path) -> Iterator[str]:
    """`mlflow models serve` of the champion the session pipeline's log stage registered in
    its default store: the server's URL."""
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
        yield url
    finally:
        os.killpg(server.pid, 15)  # the server and its workers
        server.wait(timeout=30)


def test_the_served_champion_answers_as_the_dvc_detector(small: Path, served: str):
    test = digits.load(small / paths.split_file("test"), digits.SplitSet, fix="")
    images = test.images[:200]
    expected = detector.load(small / paths.DETECTOR_DIR).answers(images)
    for body in ({"inputs": images.tolist()},  # N x 28 x 28 integers
                 {"inputs": (images.reshape(len(images), -1) / 255).tolist()}):  # fmt: skip
        answers = post(f"{served}/invocations", body)["predictions"]
        np.testing.assert_allclose([a["score"] for a in answers], expected["score"],
                                   rtol=1e-6)  # fmt: skip
        assert [a["is_anomaly"] for a in answers] == list(expected["is_anomaly"])
        assert [a["cluster"] for a in answers] == list(expected["cluster"])


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ([[0.5] * 783], "the model input: shape (1, 783), not N x 784 or N x 28 x 28 digits"),
        ([[2.0] * 784], "the model input: image 0 holds the value 2.0, outside [0, 1]"),
        ([["a"] * 784], "the model input: <U1 values; give integers in 0..255"),
    ],
)
def test_bad_input_is_a_400_with_one_line_and_no_traceback(served: str, inputs, says: str):
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(f"{served}/invocations", {"inputs": inputs})
    assert refused.value.code == 400
    answer = json.loads(refused.value.read())
    assert "stack_trace" not in answer, answer
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    # MLflow's scoring server puts its own "Failed to predict data ..." line first.
    reason = answer["message"].splitlines()[-1]
    assert reason.startswith(f"Error: {says}"), answer["message"]
    assert "Traceback" not in answer["message"] and "/site-packages/" not in answer["message"]
