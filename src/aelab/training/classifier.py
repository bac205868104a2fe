"""The digit classifier whose penultimate features define the lab's Fréchet distance (a
Fréchet distance in a digit classifier's features, not an Inception FID: its numbers
compare only within the lab): its network, its training (Adam on cross-entropy, seeded,
batches by index like the autoencoders, the epoch with the best validation accuracy kept)
and its folder, data/classifier/: a state dict and a config with the classes and the
weights' sha256, like a variant's checkpoint, so nothing is unpickled."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from aelab.core.errors import AelabError
from aelab.core.io import atomic_folder, file_sha256
from aelab.core.params import ClassifierParams
from aelab.core.paths import CLASSIFIER_DIR, CONFIG, WEIGHTS
from aelab.training.numerics import cpu_numerics

EVAL_BATCH = 4096
FEATURES = 64  # the penultimate layer's width: the Fréchet distance's dimension
SIDE = 28


class DigitClassifier(nn.Module):
    """Two strided convolutions (28 -> 14 -> 7), a 64-unit layer (the features), then one
    logit per class."""

    def __init__(self, classes: list[int]):
        super().__init__()
        self.classes = list(classes)  # logit i is digit classes[i]
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, 2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 7 * 7, FEATURES), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(FEATURES, len(self.classes))

    def features(self, x: Tensor) -> Tensor:
        """(B, 784) images in [0, 1] -> (B, FEATURES)."""
        return self.body(x.view(len(x), 1, SIDE, SIDE))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def save_classifier(model: DigitClassifier, folder: Path) -> None:
    """Weights and config; the folder appears whole or not at all."""
    with atomic_folder(folder) as staging:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, staging / WEIGHTS)
        config = {"classes": model.classes, "weights_sha256": file_sha256(staging / WEIGHTS)}
        (staging / CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def load_classifier(folder: Path, device: str = "cpu") -> DigitClassifier:
    """The classifier stage's network (in `folder`, the project's CLASSIFIER_DIR), checked
    against its recorded sha256; any bad file is one AelabError naming it."""
    fix = f"run `dvc repro -f classifier` (or `dvc checkout {CLASSIFIER_DIR}`)"
    try:
        config = json.loads((folder / CONFIG).read_text())
        model = DigitClassifier(config["classes"])
        if file_sha256(folder / WEIGHTS) != config["weights_sha256"]:
            raise AelabError(f"{folder / WEIGHTS}: its sha256 is not the one in {CONFIG}; {fix}")
        model.load_state_dict(torch.load(folder / WEIGHTS, map_location=device, weights_only=True))
    except AelabError:
        raise
    except FileNotFoundError as error:
        raise AelabError(f"{error.filename}: file not found; {fix}") from None
    except Exception as error:  # JSON, keys, unpickling, shapes: all "not the classifier"
        reason = " ".join(str(error).split())[:200]
        raise AelabError(f"{folder}: not a valid classifier ({reason}); {fix}") from None
    return model.to(device).eval()


@cpu_numerics()
def fit_classifier(
    train: tuple[Tensor, np.ndarray], val: tuple[Tensor, np.ndarray], params: ClassifierParams,
    seed: int,
) -> tuple[DigitClassifier, dict[str, float | int]]:  # fmt: skip
    """(images (N, 784) in [0, 1], digit labels (N,)) for training and validation: the
    trained classifier of the training digits' classes, and how training went."""
    torch.manual_seed(seed)
    classes = sorted(int(label) for label in np.unique(train[1]))
    model = DigitClassifier(classes).to(train[0].device)
    targets = {part: class_indices(labels, classes, images.device)
               for part, (images, labels) in (("train", train), ("val", val))}  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    shuffle = torch.Generator().manual_seed(seed)
    best, best_epoch, best_state = -1.0, 0, None
    for epoch in tqdm(range(1, params.epochs + 1), desc="classifier", unit="epoch"):
        model.train()
        order = torch.randperm(len(train[0]), generator=shuffle).to(train[0].device)
        for start in range(0, len(order), params.batch_size):
            batch = order[start : start + params.batch_size]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(train[0][batch]), targets["train"][batch]).backward()
            optimizer.step()
        accuracy = accuracy_of(model, val[0], targets["val"])
        if accuracy > best:
            best, best_epoch, best_state = accuracy, epoch, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model.eval(), {"best_epoch": best_epoch, "val_accuracy": best}


def class_indices(labels: np.ndarray, classes: list[int], device: torch.device) -> Tensor:
    """Digit labels as indices into `classes`."""
    lookup = {digit: index for index, digit in enumerate(classes)}
    return torch.tensor([lookup[int(label)] for label in labels], device=device)


@torch.no_grad()
def accuracy_of(model: DigitClassifier, images: Tensor, targets: Tensor) -> float:
    model.eval()
    predicted = torch.cat([model(images[i : i + EVAL_BATCH]).argmax(1)
                           for i in range(0, len(images), EVAL_BATCH)])  # fmt: skip
    return float((predicted == targets).float().mean())


@cpu_numerics()
@torch.no_grad()
def classify(model: DigitClassifier, images: Tensor) -> dict[str, np.ndarray]:
    """Each image's features (N, FEATURES) and class probabilities (N, classes), float64."""
    model.eval()
    features = torch.cat([model.features(images[i : i + EVAL_BATCH])
                          for i in range(0, len(images), EVAL_BATCH)])  # fmt: skip
    probabilities = torch.softmax(model.head(features), dim=1)
    return {"features": features.double().cpu().numpy(),
            "probabilities": probabilities.double().cpu().numpy()}  # fmt: skip
