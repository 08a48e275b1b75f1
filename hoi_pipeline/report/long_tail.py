"""How many training images show each class: the x axis of the long-tail figure.

HICO-DET calls a class Rare when it has fewer than 10 training instances (annotated pairs); the
figure counts images instead (an image with five people riding horses is one example of the scene).
"""

from __future__ import annotations

import numpy as np

from hoi_pipeline.structures import HOIAnnotations


def training_image_counts(annotations: HOIAnnotations, column: str, num_classes: int) -> np.ndarray:
    """(num_classes,) int64: images of the split with at least one pair of class c in `column` ('hoi' or 'verb')."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for image in annotations.images:
        classes = np.unique(getattr(image, column))
        if len(classes) and (classes.min() < 0 or classes.max() >= num_classes):
            raise ValueError(
                f"{annotations.source}: {image.filename} has a {column} class outside 0..{num_classes - 1}"
            )
        counts[classes] += 1
    return counts
