"""A trained variant's encoder as an MLflow pyfunc model: what each variant run's model and
the registry's aelab-encoder hold (`mlflow.pyfunc.load_model(uri).predict(images)`).

Input: images as N×784 floats in [0, 1]. Output: their codes, N×latent_dim. The weights
travel as the variant's checkpoint folder (its config and a state dict, which
aelab.models.checkpoints loads with `weights_only=True` and checks against its sha256), the
code as this file (MLflow's models from code) and the aelab package: nothing is pickled.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import torch
from mlflow.models import set_model

from aelab.models.checkpoints import load_checkpoint

ARTIFACT = "checkpoint"  # the artifact that holds the checkpoint folder


class EncoderModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = load_checkpoint(context.artifacts[ARTIFACT])

    # No type hints: MLflow would read them as a schema; the logged signature is the schema.
    def predict(self, context, model_input, params=None):
        images = np.asarray(model_input, dtype=np.float32).reshape(len(model_input), -1)
        with torch.no_grad():
            return self.model.encode(torch.from_numpy(images)).numpy()


# MLflow's models from code: the log step passes this file, not a pickled object.
set_model(EncoderModel())
