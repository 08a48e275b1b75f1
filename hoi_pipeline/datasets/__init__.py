"""Dataset readers. `load_annotations` picks the reader from the file's type and keys."""

from __future__ import annotations

import os
from pathlib import Path

from hoi_pipeline.structures import HOIAnnotations


def load_annotations(path: str | os.PathLike, split: str = "test") -> HOIAnnotations:
    """Load a split from a HICO-DET json, the official HICO-DET anno_bbox.mat, or a V-COCO json.

    `split` matters only for files holding several splits (anno_bbox.mat: "train" or "test").
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    if path.suffix == ".mat":
        from hoi_pipeline.datasets.hicodet_mat import load_hicodet_mat

        return load_hicodet_mat(path, split)
    if path.suffix != ".json":
        raise ValueError(f"{path}: unknown annotation format (expected a .json or .mat file)")
    from hoi_pipeline.artifacts import read_json
    from hoi_pipeline.datasets.hicodet import hicodet_from_payload

    payload = read_json(path, "annotation file")
    if "correspondence" in payload:
        return hicodet_from_payload(payload, str(path))
    if "action_to_object" in payload:
        from hoi_pipeline.datasets.vcoco import vcoco_from_payload

        return vcoco_from_payload(payload, str(path))
    raise ValueError(
        f"{path}: neither a HICO-DET json (needs 'correspondence') nor a V-COCO json (needs 'action_to_object')"
    )
