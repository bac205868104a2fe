"""aelab.data.features: the features file written and read back, or refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
from test_evaluation import features

from aelab.core.errors import AelabError
from aelab.core.io import save_arrays
from aelab.data.digits import SplitSet
from aelab.data.features import load_features, save_features


def test_a_written_features_file_reads_back_array_for_array(tmp_path):
    written = features(True)
    sets = {part: SplitSet(np.zeros((len(written[f"{part}_label"]), 28, 28), np.uint8),
                           written[f"{part}_label"], written[f"{part}_is_anomaly"])
            for part in ("train", "val", "test")}  # fmt: skip
    encoded = {part: {"latent": written[f"{part}_latent"], "error": written[f"{part}_error"]}
               for part in sets}  # fmt: skip
    path = tmp_path / "data" / "features" / "ae" / "seed_0.npz"
    save_features(path, encoded, sets)
    read = load_features(path)
    assert sorted(read) == sorted(written)
    for key, values in written.items():
        np.testing.assert_array_equal(read[key], values)


def test_a_features_file_without_an_array_names_it_and_the_fix(tmp_path):
    path = tmp_path / "data" / "features" / "ae" / "seed_1.npz"
    save_arrays(path, {k: v for k, v in features(True).items() if k != "val_error"})
    with pytest.raises(AelabError, match=r"missing arrays \['val_error'\]; run `dvc repro -f "
                                         r"extract@ae`"):  # fmt: skip
        load_features(path)
