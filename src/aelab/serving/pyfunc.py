"""The anomaly detector as an MLflow pyfunc model: what the registry's aelab-anomaly serves
(`mlflow models serve`, `mlflow.pyfunc.load_model`), with the answers of the DVC model in
detector/ (aelab.serving.detector), which it carries as its artifact.

Input: images as N×784 floats in [0, 1] or N×28×28 integers in 0..255 (an array, a nested
list, or a DataFrame with a row per image). Output: a DataFrame with each image's `score`,
`is_anomaly` (above the threshold chosen on the validation digits), `cluster` and `code`.
The model has no input signature on purpose: MLflow's schema enforcement would accept
only one of the two input forms. Bad input is MLflow's INVALID_PARAMETER_VALUE (HTTP 400)
whose message ends with aelab's one line naming what is wrong, and no stack trace: the
server's paths and code stay on the server. The log step logs this file as the model's
code (MLflow's models from code), so nothing is pickled.
"""

from __future__ import annotations

import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.models import set_model

from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.serving import detector

ARTIFACT = paths.DETECTOR_DIR.name  # the artifact that holds the detector folder


class AnomalyModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.detector = detector.load(context.artifacts[ARTIFACT])

    # No type hints: MLflow would read them as a schema to enforce.
    def predict(self, context, model_input, params=None):
        try:
            return self.detector.answers(model_input)
        except AelabError as error:
            raise MlflowException.invalid_parameter_value(str(error)) from None


# MLflow's models from code: the log step passes this file, not a pickled object.
set_model(AnomalyModel())
