"""A split: how many interactions each image gets, which classes (in exact proportion), and the drawing loop.

Each split first draws its number of interactions per image, then deals the classes out in exact
proportion to their weights (every class at least once per split when there are enough), so a
long tail in the weights is a long tail in every split. Everything is deterministic in (seed, split).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hoi_pipeline.datasets.synthetic.composition import CompositionSettings, Group, compose_image
from hoi_pipeline.datasets.synthetic.interactions import Interaction
from hoi_pipeline.datasets.synthetic.objects import object_textures
from hoi_pipeline.datasets.synthetic.rendering import render
from hoi_pipeline.datasets.synthetic.textures import make_textures

log = logging.getLogger(__name__)

PAIRS_PER_IMAGE = (0.1, 0.42, 0.33, 0.15)  # HICO-DET family: probability of 0, 1, 2, 3 annotated interactions


@dataclass(frozen=True)
class DrawnImage:
    """One rendered image and what is in it."""

    index: int  # position in the split
    image: Image.Image
    groups: list[Group]
    boxes: list[list[np.ndarray]]  # per group, per entity: (4,) pixel box (continuous, clipped)


def split_rng(seed: int, split: str, stream: int | None = None) -> np.random.Generator:
    """The generator of a split (stream None: the scenes; 1: the simulated detector)."""
    key = [seed, sum(map(ord, split))] + ([] if stream is None else [stream])
    return np.random.default_rng(key)


def class_quotas(weights: np.ndarray, total: int) -> np.ndarray:
    """Pairs per class in proportion to `weights` (largest remainder), every class at least once if possible."""
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    while total >= len(weights) and (counts == 0).any():
        counts[np.argmax(counts)] -= 1
        counts[np.flatnonzero(counts == 0)[0]] += 1
    return counts


def draw_split(split: str, num_images: int, size: int, seed: int, rules: Sequence[Interaction],
               tasks_per_image: Sequence[float] = PAIRS_PER_IMAGE,
               composition: CompositionSettings = CompositionSettings(),
               progress: Callable[[int], None] | None = None) -> Iterator[DrawnImage]:
    """Compose and render the `num_images` images of a split; `rules` in the family's class order.

    `tasks_per_image[k]` is the probability that an image gets k interactions; one that does not
    fit its image goes back to the queue for the next image.
    """
    rng = split_rng(seed, split)
    textures = {name: Image.fromarray(t) for name, t in make_textures(size, object_textures()).items()}
    planned = rng.choice(len(tasks_per_image), size=num_images, p=tasks_per_image)
    quotas = class_quotas(np.array([rule.weight for rule in rules]), int(planned.sum()))
    tasks = np.repeat(np.arange(len(rules)), quotas)
    queue = deque(int(t) for t in rng.permutation(tasks))
    object_labels = sorted({label for rule in rules for label in rule.objects})
    most = len(tasks_per_image) - 1
    for i in range(num_images):
        wanted = int(planned[i]) if i < num_images - 1 else min(most, len(queue))
        taken = [queue.popleft() for _ in range(min(wanted, len(queue)))]
        while True:
            groups, placements = compose_image([rules[t] for t in taken], object_labels, size, rng, composition)
            if placements is not None:
                break
            if taken:
                queue.appendleft(taken.pop())  # does not fit: the class waits for the next image
        image, boxes = render([(g.entities, g.extras) for g in groups], placements, size, textures, rng)
        yield DrawnImage(i, image, groups, boxes)
        if progress is not None:
            progress(1)
    if queue:
        log.info("%s: %d planned interactions did not fit and were left out", split, len(queue))
