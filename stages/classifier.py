"""Stage `classifier`: the digit classifier behind the Fréchet distance, trained on the
training digits (validation digits choose its epoch) -> data/classifier/; its accuracy on
the normal test digits -> reports/classifier.json."""

from aelab.core import paths
from aelab.core.errors import run_stage
from aelab.core.io import save_json
from aelab.core.params import load_params
from aelab.data import digits
from aelab.training.classifier import (
    accuracy_of,
    class_indices,
    fit_classifier,
    save_classifier,
)
from aelab.training.loop import as_inputs, pick_device


def main() -> None:
    params = load_params()
    device = pick_device("auto")
    sets = {part: digits.load_split(part) for part in digits.SPLITS}
    data = {part: (as_inputs(s.images, device), s.labels) for part, s in sets.items()}
    model, report = fit_classifier(data["train"], data["val"], params.classifier, params.seed)
    normal = ~sets["test"].is_anomaly
    images, labels = data["test"][0][normal], sets["test"].labels[normal]
    report["test_accuracy"] = accuracy_of(model, images, class_indices(labels, model.classes,
                                                                       device))  # fmt: skip
    save_classifier(model)
    save_json(paths.CLASSIFIER_REPORT, report)
    print(f"classifier: {report['test_accuracy']:.3f} accuracy on the normal test digits "
          f"(epoch {report['best_epoch']}) -> {paths.CLASSIFIER_DIR}/")  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
