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
from mlflow import MlflowClient

from aelab.core import paths
from aelab.data import digits
from aelab.serving import detector

pytestmark = pytest.mark.slow


def post(url: str, body: dict | bytes, content_type: str = "application/json") -> dict:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope="module")
def small(small_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the session pipeline for the module: the server only reads it."""
    return copy_of(small_pipeline, tmp_path_factory.mktemp("served"))


def serve(project: Path, port: int, log: Path) -> subprocess.Popen:
    """`mlflow models serve` of the champion the project's log stage registered in its
    default store, its output in `log`."""
    store = f"sqlite:///{project / 'mlflow.db'}"
    command = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/aelab-anomaly@champion",
               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    env = command_env(project, MLFLOW_TRACKING_URI=store,
                      MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")  # fmt: skip
    with open(log, "w") as output:
        return subprocess.Popen(command, cwd=project, env=env, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


@pytest.fixture(scope="module")
def served(small: Path) -> Iterator[str]:
    """The session pipeline's champion, served: the server's URL."""
    port, log = free_port(), small / "serve.log"
    server = serve(small, port, log)
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


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/csv", b'a,b\n1,2,3,4\n"never closed'), ("application/vnd.apache.parquet", b"PAR1 no")],
)
def test_a_body_mlflow_cannot_parse_is_a_400_without_a_trace(served: str, content_type: str,
                                                              body: bytes):  # fmt: skip
    """MLflow parses these before the model sees them; its answer used to carry a
    stack_trace of the server's site-packages paths."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(f"{served}/invocations", body, content_type)
    assert refused.value.code == 400
    answer = json.loads(refused.value.read())
    assert "stack_trace" not in answer, answer
    assert answer["message"].startswith("Failed to parse input as a Pandas DataFrame")
    assert "/site-packages/" not in json.dumps(answer)


def test_a_tampered_champion_is_not_served(small_pipeline: Path, tmp_path: Path):
    """The champion's detector code and threshold changed in the artifact store (the project's
    local file store; the team stack keeps them in S3): the server stops before it imports
    that code, with one line of its own (MLflow's CLI then reports the failed command)."""
    project = copy_of(small_pipeline, tmp_path)
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("aelab-anomaly", "champion")
    model_id = champion.source.removeprefix("models:/")
    files = Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://"))
    marker = tmp_path / "the-changed-code-ran"
    code = files / "code" / "aelab" / "serving" / "detector.py"
    code.write_text(f"open({str(marker)!r}, 'w').close()\n" + code.read_text())
    config = files / "artifacts" / "detector" / paths.DETECTOR_CONFIG
    config.write_text(json.dumps({**json.loads(config.read_text()), "threshold": -1e9}))
    port, log = free_port(), tmp_path / "serve.log"
    server = serve(project, port, log)
    try:
        server.wait(timeout=120)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
    lines = [line for line in log.read_text().splitlines() if line.startswith("error: ")]
    assert server.returncode != 0 and len(lines) == 1, log.read_text()
    version = champion.version
    assert lines[0].startswith(f"error: models:/aelab-anomaly/{version}: its files are not the "
                               f"ones registered as version {version} (digest ")  # fmt: skip
    assert not marker.exists() and not answers_http(f"http://127.0.0.1:{port}/ping")
