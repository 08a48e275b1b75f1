"""How well the relatedness score s_b finds the interacting pair (the self-taught classifier's job, Sec. 3.3).

A diagnostic beside mAP: for each test image with annotated pairs, does the pair with the highest
s_b match an annotated pair (human and object IoU >= 0.5)? Chance is the fraction of the image's
pairs that match. Used by the demo learning test and `benchmarks/bench_deviations.py`.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou

from hoi_pipeline.datasets.hoi_images import HOIImageDataset
from hoi_pipeline.structures import HOIAnnotations


@torch.no_grad()
def relatedness_pick_rate(
    model: torch.nn.Module, dataset: HOIImageDataset, annotations: HOIAnnotations, batch_size: int = 16
) -> tuple[float, float]:
    """(pick rate, chance) over the images with pairs and annotated pairs, on the CPU."""
    hits, chance = [], []
    for start in range(0, len(dataset), batch_size):
        batch = dataset.collate([dataset[i] for i in range(start, min(len(dataset), start + batch_size))]).to("cpu")
        out = model(batch.images, batch.boxes, batch.labels, batch.scores, batch.image_sizes)
        for b, i in enumerate(batch.indices.tolist()):
            rows = torch.nonzero(out.pair_image == b, as_tuple=True)[0]
            truth = annotations.images[i]
            if len(rows) == 0 or truth.num_pairs == 0:
                continue
            boxes = torch.from_numpy(dataset.proposals(i).boxes)
            pairs = out.pairs[rows]
            match = ((box_iou(boxes[pairs[:, 0]], torch.from_numpy(truth.boxes_h)) >= 0.5)
                     & (box_iou(boxes[pairs[:, 1]], torch.from_numpy(truth.boxes_o)) >= 0.5)).any(dim=1)  # fmt: skip
            hits.append(float(match[out.relatedness_logits[rows].argmax()]))
            chance.append(float(match.float().mean()))
    return float(np.mean(hits)), float(np.mean(chance))
