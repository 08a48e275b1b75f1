"""Dataset readers. `load_annotations` picks the reader from the path's type and the file's keys."""

from __future__ import annotations

import os
from pathlib import Path

from hoi_pipeline.structures import HOIAnnotations


def load_annotations(path: str | os.PathLike, split: str = "test") -> HOIAnnotations:
    """Load a split from one of the supported layouts:

    - a HICO-DET json (`instances_{train,test}2015.json`) or the official `anno_bbox.mat` (`split`:
      "train" or "test");
    - a V-COCO json in the common layout (`instances_vcoco_{trainval,test}.json`);
    - the official V-COCO release: its `data/vcoco/vcoco_<part>.json` (`split` unused), or its `data`
      folder with `split` a spec of parts joined by '+' ("train+val"; "trainval" is train + val).

    `split` matters only for files or folders holding several splits.
    """
    path = Path(path)
    if path.is_dir():
        from hoi_pipeline.datasets.vcoco_official import is_official_root, load_vcoco_official

        if is_official_root(path):
            return load_vcoco_official(path, split)
        raise ValueError(f"{path}: a folder, but not the official V-COCO release's data folder (no vcoco/ inside)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    if path.suffix == ".mat":
        from hoi_pipeline.datasets.hicodet_mat import load_hicodet_mat

        return load_hicodet_mat(path, split)
    if path.suffix != ".json":
        raise ValueError(f"{path}: unknown annotation format (expected a .json or .mat file)")
    if _holds_a_list(path):  # the official V-COCO files are a list of actions
        from hoi_pipeline.datasets.vcoco_official import load_vcoco_official

        return load_vcoco_official(path, split)
    from hoi_pipeline.artifacts import read_json
    from hoi_pipeline.datasets.hicodet import hicodet_from_payload

    payload = read_json(path, "annotation file")
    if "correspondence" in payload:
        return hicodet_from_payload(payload, str(path))
    if "action_to_object" in payload:
        from hoi_pipeline.datasets.vcoco import vcoco_from_payload

        return vcoco_from_payload(payload, str(path))
    raise ValueError(
        f"{path}: neither a HICO-DET json (needs 'correspondence') nor a V-COCO json (needs 'action_to_object' "
        "in the common layout, or a list of actions in the official one)"
    )


def annotation_files(path: str | os.PathLike, split: str = "test") -> list[Path]:
    """Every file a split's annotations are read from (for rule inputs and up-front checks).

    The file itself, except for the official V-COCO release, whose split also reads its ids files and
    the COCO instances beside it (`vcoco_official.official_files`). Nothing is opened but the first
    bytes of a json file; a path that does not exist is returned as it is.
    """
    path = Path(path)
    official = path.is_dir() or (path.suffix == ".json" and path.is_file() and _holds_a_list(path))
    if not official:
        return [path]
    from hoi_pipeline.datasets.vcoco_official import official_files

    return official_files(path, split).all()


def _holds_a_list(path: Path) -> bool:
    """Whether the json file's top-level value is a list (its first non-blank character is '[')."""
    with open(path, "rb") as handle:
        head = handle.read(256).lstrip()
    return head.startswith(b"[")
