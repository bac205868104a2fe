"""The anomaly detector as an MLflow pyfunc model: what the registry's aelab-anomaly serves
(`mlflow models serve`, `mlflow.pyfunc.load_model`), with the answers of the DVC model in
detector/ (aelab.serving.detector), which it carries as its artifact.

Loading checks first: `load_context` compares the downloaded folder's files with the digest
recorded when its version was registered (aelab.serving.digests), and only then imports the
detector's code and loads its weights. A changed file is one line, the one `aelab score
--model` prints; a model not loaded as a registered version (runs:/, models:/m-..., a
folder) has no recorded digest and is refused. This file and MLmodel are read by MLflow
before `load_context` runs: against a change to them, the store's own access control and
`aelab score --model` (which checks its whole download before MLflow reads any of it) hold.

Input: images as N×784 floats in [0, 1] or N×28×28 integers in 0..255 (an array, a nested
list, or a DataFrame with a row per image), at most MAX_REQUEST_IMAGES a request. Output: a
DataFrame with each image's `score`, `is_anomaly` (above the threshold chosen on the
validation digits), `cluster` and `code`. The model has no input signature on purpose:
MLflow's schema enforcement would accept only one of the two input forms. Bad input is
MLflow's INVALID_PARAMETER_VALUE (HTTP 400) whose message ends with aelab's one line naming
what is wrong, and no stack trace: the server's paths and code stay on the server. The log
step logs this file as the model's code (MLflow's models from code), so nothing is pickled.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import BAD_REQUEST

from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.serving import digests

ARTIFACT = paths.DETECTOR_DIR.name  # the artifact that holds the detector folder
REGISTERED_AS = "models:/aelab-anomaly@champion"  # aelab.tracking.registry's name for it
# A request's images, checked before any is converted: 31 MB as float32. MLflow has parsed
# the request's body before the model sees it (a JSON of 10,000 images is about 16 MB).
MAX_REQUEST_IMAGES = 10_000
SERVER_APP = "mlflow.pyfunc.scoring_server.app"  # imported only by `mlflow models serve`'s server


class AnomalyModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        folder = Path(context.artifacts[ARTIFACT])  # <model>/artifacts/detector
        try:
            digests.check_download(folder.parents[1], REGISTERED_AS)
        except AelabError as error:
            if SERVER_APP in sys.modules:  # the scoring server: it stops with this line alone
                raise SystemExit(f"error: {error}") from None
            raise
        from aelab.serving import detector  # its code, once the files are the registered ones

        self.detector = detector.load(folder)
        answer_unparsable_bodies_without_traces()

    # No type hints: MLflow would read them as a schema to enforce.
    def predict(self, context, model_input, params=None):
        try:
            check_request_size(model_input)
            return self.detector.answers(model_input)
        except AelabError as error:
            raise MlflowException.invalid_parameter_value(str(error)) from None
        except Exception as error:  # any other failure on odd input: one line, no trace
            reason = " ".join(str(error).split())[:200]
            raise MlflowException.invalid_parameter_value(
                f"the model input: cannot score it ({type(error).__name__}: {reason}); give "
                f"N x 784 floats in [0, 1] or N x 28 x 28 integers in 0..255"
            ) from None


def check_request_size(model_input) -> None:
    """At most MAX_REQUEST_IMAGES images, counted before any is converted."""
    count = len(model_input) if hasattr(model_input, "__len__") else 0
    if count > MAX_REQUEST_IMAGES:
        raise AelabError(
            f"the model input: {count:,} images, more than a request takes "
            f"({MAX_REQUEST_IMAGES:,}); send them in several requests"
        )


def answer_unparsable_bodies_without_traces() -> None:
    """MLflow's scoring server answers a body it cannot parse (a damaged CSV or parquet) with
    HTTP 400 and a `stack_trace` of its own code's paths. Inside that server (it has imported
    its module before loading the model), its two parsers are wrapped to give the same
    answer without the trace. Nowhere else: no other process uses them."""
    server = sys.modules.get("mlflow.pyfunc.scoring_server")
    for name in ("parse_csv_input", "parse_parquet_input"):
        parse = getattr(server, name, None)
        if parse is None or getattr(parse, "without_traces", False):
            continue

        @functools.wraps(parse)
        def parse_without_trace(*args, _parse=parse, **kwargs):
            try:
                return _parse(*args, **kwargs)
            except MlflowException as error:
                raise MlflowException(error.message, error_code=BAD_REQUEST) from None

        parse_without_trace.without_traces = True
        setattr(server, name, parse_without_trace)


# MLflow's models from code: the log step passes this file, not a pickled object.
set_model(AnomalyModel())
