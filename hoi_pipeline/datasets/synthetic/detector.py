"""The simulated detector: what an off-the-shelf object detector would report on a drawn scene.

Every drawn person and object is found with a jittered box and a high-ish score unless missed;
some objects get another object's class; some get a duplicate, looser box with a lower score;
random low-scored false positives are added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hoi_pipeline.structures import Proposals


@dataclass(frozen=True)
class DetectorNoise:
    """How the simulated detector errs (see `SyntheticConfig`)."""

    miss_rate: float = 0.05
    box_jitter: float = 0.05
    false_positives: float = 1.0
    confusion_rate: float = 0.03
    duplicate_rate: float = 0.1


def simulate_detections(filename: str, size: int, boxes: np.ndarray, labels: np.ndarray, person: int,
                        num_objects: int, noise: DetectorNoise, rng: np.random.Generator) -> Proposals:
    """Detector-like output for the drawn instances `boxes` (K, 4) with object indices `labels` (K,).

    Object indices run over 0..num_objects-1, `person` among them; `size` is the square image's side.
    """
    others = np.array([i for i in range(num_objects) if i != person])
    found_boxes, scores, found_labels = [], [], []
    for box, label in zip(boxes, labels):
        if rng.random() < noise.miss_rate:
            continue
        if label != person and rng.random() < noise.confusion_rate:
            label = int(rng.choice(others[others != label]))
        score = float(rng.beta(8.0, 1.6))
        found_boxes.append(_jitter(box, noise.box_jitter, size, rng))
        scores.append(score)
        found_labels.append(int(label))
        if rng.random() < noise.duplicate_rate:
            found_boxes.append(_jitter(box, 2.5 * noise.box_jitter, size, rng))
            scores.append(score * rng.uniform(0.3, 0.8))
            found_labels.append(int(label))
    for _ in range(int(rng.poisson(noise.false_positives))):
        w, h = rng.uniform(0.08, 0.45, size=2) * size
        x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        found_boxes.append(np.array([x1, y1, x1 + w, y1 + h]))
        scores.append(float(rng.uniform(0.02, 0.45)))
        found_labels.append(person if rng.random() < 0.3 else int(rng.choice(others)))
    return Proposals(
        filename=filename,
        boxes=np.asarray(found_boxes, dtype=np.float32).reshape(-1, 4),
        scores=np.clip(np.asarray(scores, dtype=np.float32), 0.01, 0.99),
        labels=np.asarray(found_labels, dtype=np.int64),
    )


def _jitter(box: np.ndarray, sigma: float, size: int, rng: np.random.Generator) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    noisy = box + rng.normal(0.0, sigma, 4) * np.array([w, h, w, h])
    noisy = np.clip(noisy, 0, size)
    noisy[2] = max(noisy[2], min(noisy[0] + 2, size))
    noisy[3] = max(noisy[3], min(noisy[1] + 2, size))
    noisy[0] = min(noisy[0], noisy[2] - 1)
    noisy[1] = min(noisy[1], noisy[3] - 1)
    return np.round(noisy, 2)
