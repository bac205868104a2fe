"""Stage `classifier`: the digit classifier behind the Fréchet distance, trained on the
training digits (validation digits choose its epoch) -> data/classifier/; its accuracy on
the normal test digits -> reports/classifier.json."""

from pathlib import Path

from aelab.core import paths
from aelab.core.errors import run_stage
from aelab.core.io import save_json
from aelab.core.params import PARAMS_FILE, load_params
from aelab.data import digits
from aelab.training.classifier import (
    accuracy_of,
    class_indices,
    fit_classifier,
    save_classifier,
)
from aelab.training.loop import as_inputs, pick_device


def main(root: Path | None = None) -> None:
    root = root or paths.project_root()
    params = load_params(root / PARAMS_FILE)
    device = pick_device("auto")
    sets = {part: digits.load_split(root, part) for part in digits.SPLITS}
    data = {part: (as_inputs(s.images, device), s.labels) for part, s in sets.items()}
    model, report = fit_classifier(data["train"], data["val"], params.classifier, params.seed)
    normal = ~sets["test"].is_anomaly
    images, labels = data["test"][0][normal], sets["test"].labels[normal]
    report["test_accuracy"] = accuracy_of(model, images, class_indices(labels, model.classes,
                                                                       device))  # fmt: skip
    save_classifier(model, root / paths.CLASSIFIER_DIR)
    save_json(root / paths.CLASSIFIER_REPORT, report)
    print(f"classifier: {report['test_accuracy']:.3f} accuracy on the normal test digits "
          f"(epoch {report['best_epoch']}) -> {paths.CLASSIFIER_DIR}/")  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
