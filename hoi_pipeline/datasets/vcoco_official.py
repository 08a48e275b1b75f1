"""The official V-COCO release (github.com/s-gupta/v-coco), read and written as its `vsrl_eval.py` reads it.

Files, relative to the release's `data` folder (ROOT), exactly those vsrl_eval.py's `VCOCOeval` opens:
- ROOT/vcoco/vcoco_{part}.json, part = train, val, test (and trainval): a list, one entry per action
  (26 in the release) with keys `action_name`, `role_name` (['agent', *object roles]), `include` (per
  role, the COCO category names the role may take; [] = any), and one row per V-COCO annotated person
  of the part: `image_id`, `ann_id` (the person's COCO annotation id), `label` (1: does the action),
  `role_object_id` (K x N values stored role-major: reshape(K, N).T gives each row's COCO annotation
  ids of [agent, role 1, ...], 0 where the role has no object).
- ROOT/splits/vcoco_{part}.ids: the part's COCO image ids, one a line, ascending.
- ROOT/instances_vcoco_all_2014.json: the COCO 2014 instances of the V-COCO images, made by the
  repository's script_pick_annotations.py from COCO's instances_{train,val}2014.json: images (id,
  file_name, width, height), annotations (id, image_id, category_id, bbox [x, y, w, h], area, iscrowd,
  optional ignore), categories (id, name).
Images are COCO 2014's: the train and val parts come from train2014/, test from val2014/.

A split is either ROOT/vcoco/vcoco_{part}.json (that part) or ROOT itself with a split spec: part
names joined by '+' ("train+val"); "trainval" means train + val (what the release's trainval files hold).

Ground truth, as `VCOCOeval._get_vcocodb` builds it, per image in the ids file's order:
- the image's COCO annotations in file order; one with `ignore` 1 is dropped; its box becomes
  (x, y, x + max(0, w - 1), y + max(0, h - 1)) clipped to [0, width - 1] x [0, height - 1] and is kept
  when `area` > 0 and x2 > x1 and y2 > y1 (crowd boxes are kept);
- persons = kept annotations of the first category (vsrl_eval's contiguous class 1; it must be 'person');
  a person whose annotation id is a row of the first action is annotated: it does action a when its row
  of a has label 1 (at most one such row); other persons are `ignore`d (detections matched to them skipped);
- the box of role j of an action a person does is the kept annotation `role_object_id` names (an
  error when that annotation was dropped, where vsrl_eval.py asserts); 0 means no box (a missing role).
Pairs for training (`HOIAnnotations`, image-level labels): one per (label-1 row, object role with an
object), boxes continuous (x, y, x + w, y + h) from the raw COCO boxes as in the common json; a role
object whose category is outside the role's `include` has no HOI class and gives no pair (logged).
HOI classes: each action-role class with the categories of its `include`, or every category when
`include` is empty.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hoi_pipeline.artifacts import atomic_path, read_json
from hoi_pipeline.datasets.vcoco import VCOCOAnnotations, VCOCOGroundTruth, VCOCOImageTruth
from hoi_pipeline.structures import ImageAnnotation, Vocabulary

log = logging.getLogger(__name__)

COCO_FILE = "instances_vcoco_all_2014.json"
REPOSITORY = "https://github.com/s-gupta/v-coco"
AGENT = "agent"
PART_ALIASES = {"trainval": ("train", "val")}
ACTION_KEYS = ("action_name", "role_name", "include", "image_id", "ann_id", "label", "role_object_id")


# --------------------------------------------------------------------------------------------
# which files a split reads


@dataclass(frozen=True)
class OfficialFiles:
    """The files one split reads: a vsrl json and an ids file per part, and the COCO instances."""

    root: Path
    parts: tuple[str, ...]
    vsrl: tuple[Path, ...]
    ids: tuple[Path, ...]
    coco: Path

    def all(self) -> list[Path]:
        return [*self.vsrl, *self.ids, self.coco]


def missing_file_message(path: Path, what: str) -> str:
    """One line: the missing file, where to get it, and the config key that points at it."""
    return (
        f"{path}: {what} not found. V-COCO needs the official release ({REPOSITORY}: data/vcoco/vcoco_*.json, "
        f"data/splits/vcoco_*.ids), data/{COCO_FILE} made by its script_pick_annotations.py from the COCO 2014 "
        "annotations (instances_{train,val}2014.json, https://cocodataset.org) and the COCO 2014 images; "
        "point datasets.<name>.splits.<split>.annotations at data/vcoco/vcoco_<part>.json or at the data folder"
    )


def is_official_root(path: Path) -> bool:
    """A folder laid out like the release's `data` folder."""
    return path.is_dir() and ((path / "vcoco").is_dir() or (path / COCO_FILE).is_file())


def official_files(path: str | os.PathLike, split: str) -> OfficialFiles:
    """The files of a split: `path` is ROOT/vcoco/vcoco_{part}.json (`split` unused) or ROOT with a split spec."""
    path = Path(path)
    if path.is_dir():
        root = path
        parts: tuple[str, ...] = ()
        for token in split.split("+"):
            parts += PART_ALIASES.get(token, (token,))
        if not all(parts):
            raise ValueError(f"{path}: bad V-COCO split spec '{split}' (parts joined by '+', e.g. 'train+val')")
    else:
        if not path.name.startswith("vcoco_") or path.suffix != ".json":
            raise ValueError(f"{path}: an official V-COCO annotation file is named vcoco_<part>.json")
        root = path.parent.parent
        parts = (path.stem[len("vcoco_") :],)
    return OfficialFiles(
        root=root,
        parts=parts,
        vsrl=tuple(root / "vcoco" / f"vcoco_{part}.json" for part in parts),
        ids=tuple(root / "splits" / f"vcoco_{part}.ids" for part in parts),
        coco=root / COCO_FILE,
    )


def check_official_files(files: OfficialFiles) -> None:
    """Stop at the first missing file with a one-line message naming it and where to get it."""
    for paths, what in ((files.vsrl, "V-COCO annotation file"), (files.ids, "V-COCO split ids file")):
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(missing_file_message(path, what))
    if not files.coco.is_file():
        raise FileNotFoundError(missing_file_message(files.coco, "COCO 2014 instances of the V-COCO images"))


# --------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class ActionRows:
    """One action of a vsrl json: its roles and N rows (annotated persons)."""

    name: str
    roles: tuple[str, ...]  # (K,) 'agent' first
    include: tuple[tuple[str, ...], ...]  # (K,) category names per role, () = any
    image_id: np.ndarray  # (N,) int64
    ann_id: np.ndarray  # (N,) int64
    label: np.ndarray  # (N,) int64
    role_ids: np.ndarray  # (N, K) int64 COCO annotation ids, 0 = none


def read_vsrl(path: Path) -> list[ActionRows]:
    """Parse a vsrl json (`_load_vcoco` of vsrl_eval.py); errors name the file and the problem."""
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(payload, list) or not payload:
        raise ValueError(f"{path}: an official V-COCO file is a non-empty list of actions")
    actions = []
    for i, entry in enumerate(payload):
        missing = [key for key in ACTION_KEYS if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise ValueError(f"{path}: action {i} lacks keys {missing}")
        roles = tuple(entry["role_name"])
        if not roles or roles[0] != AGENT:
            raise ValueError(
                f"{path}: action '{entry['action_name']}' has roles {list(roles)}; the first must be 'agent'"
            )
        n = len(entry["ann_id"])
        if len(entry["image_id"]) != n or len(entry["label"]) != n or len(entry["role_object_id"]) != n * len(roles):
            raise ValueError(
                f"{path}: action '{entry['action_name']}': image_id, ann_id, label and role_object_id "
                f"({len(roles)} roles) differ in length"
            )
        include = tuple(tuple(names) for names in entry["include"])
        if len(include) != len(roles):
            raise ValueError(
                f"{path}: action '{entry['action_name']}' has {len(include)} include lists for {len(roles)} roles"
            )
        role_ids = np.asarray(entry["role_object_id"], dtype=np.int64).reshape(len(roles), n).T  # (N, K)
        ann_id = np.asarray(entry["ann_id"], dtype=np.int64).reshape(-1)
        if n and not np.array_equal(role_ids[:, 0], ann_id):
            raise ValueError(f"{path}: action '{entry['action_name']}': role_object_id's agent ids differ from ann_id")
        actions.append(
            ActionRows(
                name=str(entry["action_name"]),
                roles=roles,
                include=include,
                image_id=np.asarray(entry["image_id"], dtype=np.int64).reshape(-1),
                ann_id=ann_id,
                label=np.asarray(entry["label"], dtype=np.int64).reshape(-1),
                role_ids=role_ids,
            )
        )
    return actions


def read_ids(path: Path) -> np.ndarray:
    try:
        ids = np.loadtxt(path, ndmin=1)
    except ValueError as error:
        raise ValueError(f"{path}: not a list of image ids, one a line ({error})") from error
    if ids.size and (np.any(ids != np.round(ids)) or ids.min() < 0):
        raise ValueError(f"{path}: image ids must be non-negative integers")
    return ids.astype(np.int64)


def _combine(parts: Sequence[list[ActionRows]], files: OfficialFiles) -> list[ActionRows]:
    first = parts[0]
    for path, other in zip(files.vsrl[1:], parts[1:]):
        if [(a.name, a.roles) for a in other] != [(a.name, a.roles) for a in first]:
            raise ValueError(f"{path}: its actions or roles differ from those of {files.vsrl[0]}")
    return [
        ActionRows(
            name=a.name,
            roles=a.roles,
            include=a.include,
            image_id=np.concatenate([p[i].image_id for p in parts]),
            ann_id=np.concatenate([p[i].ann_id for p in parts]),
            label=np.concatenate([p[i].label for p in parts]),
            role_ids=np.concatenate([p[i].role_ids for p in parts]),
        )
        for i, a in enumerate(first)
    ]


def _clean_box(bbox: Sequence[float], width: float, height: float) -> tuple[float, float, float, float]:
    """vsrl_eval.py's box: (x, y, x + max(0, w - 1), y + max(0, h - 1)) clipped to the image."""
    x1, y1 = float(bbox[0]), float(bbox[1])
    x2 = x1 + max(0.0, float(bbox[2]) - 1.0)
    y2 = y1 + max(0.0, float(bbox[3]) - 1.0)
    x1, x2 = (min(width - 1.0, max(0.0, v)) for v in (x1, x2))
    y1, y2 = (min(height - 1.0, max(0.0, v)) for v in (y1, y2))
    return x1, y1, x2, y2


def _continuous(bbox: Sequence[float]) -> list[float]:
    return [float(bbox[0]), float(bbox[1]), float(bbox[0]) + float(bbox[2]), float(bbox[1]) + float(bbox[3])]


def load_vcoco_official(path: str | os.PathLike, split: str = "test") -> VCOCOAnnotations:
    """A split of the official release (see the module docstring for `path` and `split`)."""
    files = official_files(path, split)
    check_official_files(files)
    source = str(path) if len(files.parts) == 1 else f"{path} ({'+'.join(files.parts)})"
    parts = [read_vsrl(p) for p in files.vsrl]
    image_ids = []
    for vsrl_path, ids_path, actions in zip(files.vsrl, files.ids, parts):
        ids = read_ids(ids_path)
        if not np.array_equal(np.unique(actions[0].image_id), ids):  # vsrl_eval.py's "simple check"
            raise ValueError(f"{vsrl_path}: its image ids differ from {ids_path} (sorted, they must be equal)")
        image_ids.append(ids)
    actions = _combine(parts, files)
    ids = np.concatenate(image_ids)
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{source}: the parts {list(files.parts)} share images")
    coco = read_json(files.coco, "COCO instances file")
    missing = [key for key in ("images", "annotations", "categories") if key not in coco]
    if missing:
        raise ValueError(f"{files.coco}: not a COCO instances file, missing keys {missing}")
    return _build_split(actions, ids, coco, files, source)


def _vocabulary(actions: Sequence[ActionRows], objects: tuple[str, ...], source: str) -> Vocabulary:
    verbs, roles, pairs = [], [], []
    index = {name: i for i, name in enumerate(objects)}
    for action in actions:
        for role, include in zip(action.roles[1:], action.include[1:]):
            unknown = [name for name in include if name not in index]
            if unknown:
                raise ValueError(f"{source}: '{action.name} {role}' includes categories {unknown} that COCO lacks")
            allowed = [index[name] for name in include] if include else range(len(objects))
            pairs += [(len(verbs), o) for o in allowed]
            verbs.append(f"{action.name} {role}")
            roles.append(role)
    hoi_classes = np.array(sorted(set(pairs)), dtype=np.int64).reshape(-1, 2)
    return Vocabulary(
        verbs=tuple(verbs),
        objects=objects,
        hoi_classes=hoi_classes,
        rare=np.zeros(0, dtype=np.int64),
        non_rare=np.arange(len(hoi_classes)),
        verb_roles=tuple(roles),
    )


def _build_split(
    actions: list[ActionRows], ids: np.ndarray, coco: dict, files: OfficialFiles, source: str
) -> VCOCOAnnotations:
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    if not categories or categories[0]["name"] != "person":
        raise ValueError(
            f"{files.coco}: the first category must be 'person' (vsrl_eval.py takes it as the person class)"
        )
    objects = tuple(c["name"] for c in categories)
    object_of = {c["id"]: i for i, c in enumerate(categories)}
    person_id = categories[0]["id"]
    vocabulary = _vocabulary(actions, objects, source)
    lookup = vocabulary.hoi_lookup()  # (R, O)
    action_names = tuple(a.name for a in actions)
    # (R,) action of each class, and (action, role position) of each class
    role_slots = [(a, j) for a, action in enumerate(actions) for j in range(1, len(action.roles))]
    role_action = np.array([a for a, _ in role_slots], dtype=np.int64)

    images = {image["id"]: image for image in coco["images"]}
    wanted = set(ids.tolist())
    absent = sorted(wanted - set(images))
    if absent:
        raise ValueError(f"{files.coco}: lacks {len(absent)} image(s) of {source} (first ids: {absent[:3]})")
    anns_of: dict[int, list[dict]] = {i: [] for i in wanted}
    ann_by_id: dict[int, dict] = {}
    for ann in coco["annotations"]:
        if ann["image_id"] in anns_of:
            anns_of[ann["image_id"]].append(ann)
            ann_by_id[ann["id"]] = ann
    annotated = set(actions[0].ann_id.tolist())  # vsrl_eval.py: in the first action's rows
    # positive rows per action: person ann id -> row (label 1)
    positive_rows: list[dict[int, int]] = []
    for action in actions:
        rows: dict[int, int] = {}
        for row in np.flatnonzero(action.label == 1):
            person = int(action.ann_id[row])
            if person in rows:
                raise ValueError(f"{source}: person {person} has two label-1 rows for action '{action.name}'")
            rows[person] = int(row)
        positive_rows.append(rows)

    positives_of_image: list[dict[int, list[int]]] = []  # per action: image id -> its label-1 rows
    for action in actions:
        by_image: dict[int, list[int]] = {}
        for row in np.flatnonzero(action.label == 1).tolist():
            by_image.setdefault(int(action.image_id[row]), []).append(row)
        positives_of_image.append(by_image)

    image_annotations, truths = [], []
    dropped = 0
    for image_id in ids.tolist():
        image = images[image_id]
        width, height = float(image["width"]), float(image["height"])
        kept: dict[int, tuple[float, float, float, float]] = {}  # ann id -> clean box, file order
        persons = []
        for ann in anns_of[image_id]:
            if ann.get("ignore", 0) == 1:
                continue
            box = _clean_box(ann["bbox"], width, height)
            if ann["area"] > 0 and box[2] > box[0] and box[3] > box[1]:
                kept[ann["id"]] = box
                if ann["category_id"] == person_id:
                    persons.append(ann["id"])
        h, num_actions, r = len(persons), len(actions), len(role_slots)
        does = np.zeros((h, num_actions), dtype=bool)
        ignore = np.array([p not in annotated for p in persons], dtype=bool)
        role_boxes = np.full((h, r, 4), np.nan, dtype=np.float32)
        for p, person in enumerate(persons):
            for a, rows in enumerate(positive_rows):
                if ignore[p] or person not in rows:
                    continue
                does[p, a] = True
                for c in np.flatnonzero(role_action == a):
                    target = int(actions[a].role_ids[rows[person], role_slots[c][1]])
                    if target == 0:
                        continue
                    if target not in kept:
                        raise ValueError(
                            f"{files.coco}: role object {target} of person {person} ({actions[a].name}) is not a "
                            "usable annotation of its image (absent, ignored, zero area or under a pixel)"
                        )
                    role_boxes[p, c] = kept[target]
        truths.append(
            VCOCOImageTruth(
                boxes=np.array([kept[p] for p in persons], dtype=np.float32).reshape(-1, 4),
                ignore=ignore,
                actions=does,
                role_boxes=role_boxes,
            )
        )
        image_annotations.append(
            (image, _pairs(image_id, actions, positives_of_image, role_slots, ann_by_id, object_of, lookup, files))
        )
    images_out = []
    for image, (boxes_h, boxes_o, hoi, verb, obj, lost) in image_annotations:
        dropped += lost
        images_out.append(
            ImageAnnotation(
                filename=image["file_name"],
                width=int(image["width"]),
                height=int(image["height"]),
                boxes_h=np.asarray(boxes_h, dtype=np.float32).reshape(-1, 4),
                boxes_o=np.asarray(boxes_o, dtype=np.float32).reshape(-1, 4),
                hoi=hoi,
                verb=verb,
                object=obj,
            )
        )
    if dropped:
        log.warning(
            "%s: %d role objects lie outside their role's 'include' categories: no training pair", source, dropped
        )
    ground_truth = VCOCOGroundTruth(
        action_names=action_names,
        role_names=vocabulary.verbs,
        role_action=role_action,
        images=tuple(truths),
    )
    return VCOCOAnnotations(
        vocabulary=vocabulary,
        images=tuple(images_out),
        source=source,
        empty=tuple(image.filename for image in images_out if image.num_pairs == 0),
        benchmark="vcoco",
        ground_truth=ground_truth,
    )


def _pairs(
    image_id: int,
    actions: list[ActionRows],
    positives_of_image: list[dict[int, list[int]]],
    role_slots: list[tuple[int, int]],
    ann_by_id: Mapping[int, dict],
    object_of: Mapping[int, int],
    lookup: np.ndarray,
    files: OfficialFiles,
) -> tuple[list, list, list, list, list, int]:
    """Training pairs of one image: per action, role and label-1 row with a role object (common json order)."""
    boxes_h, boxes_o, hoi, verb, obj = [], [], [], [], []
    lost = 0
    for c, (a, j) in enumerate(role_slots):
        action = actions[a]
        for row in positives_of_image[a].get(image_id, ()):
            agent, target = int(action.role_ids[row, 0]), int(action.role_ids[row, j])
            if target == 0:
                continue
            for ann_id in (agent, target):
                if ann_id not in ann_by_id:
                    raise ValueError(f"{files.coco}: annotation {ann_id} of image {image_id} ({action.name}) is absent")
            o = object_of[ann_by_id[target]["category_id"]]
            if lookup[c, o] < 0:
                lost += 1
                continue
            boxes_h.append(_continuous(ann_by_id[agent]["bbox"]))
            boxes_o.append(_continuous(ann_by_id[target]["bbox"]))
            hoi.append(int(lookup[c, o]))
            verb.append(c)
            obj.append(o)
    return boxes_h, boxes_o, hoi, verb, obj, lost


# --------------------------------------------------------------------------------------------
# writing


@dataclass(frozen=True)
class VCOCOAction:
    """An action and its object roles (none for agent-only actions such as 'stand')."""

    name: str
    roles: tuple[str, ...] = ()  # object roles after the agent, e.g. ('instr', 'obj')
    include: tuple[tuple[str, ...], ...] = ()  # per role, the categories it may take; () = any (default)


@dataclass(frozen=True)
class COCOInstance:
    """One annotated instance: its category and continuous box (x1, y1, x2, y2)."""

    category: str
    box: tuple[float, float, float, float]
    iscrowd: bool = False


@dataclass(frozen=True)
class PersonActions:
    """The V-COCO labels of one person: `actions` maps each action it does to {role: instance index or None}.

    Actions not listed get label 0. A role left out or None has no object (a missing role box).
    """

    person: int  # index of the person in its image's instances
    actions: Mapping[str, Mapping[str, int | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class OfficialImage:
    """One image: every instance COCO annotates, and the persons V-COCO labels (others stay unlabelled)."""

    file_name: str
    width: int
    height: int
    instances: tuple[COCOInstance, ...]
    persons: tuple[PersonActions, ...] = ()


def write_vcoco_official(
    root: str | os.PathLike,
    *,
    actions: Sequence[VCOCOAction],
    categories: Sequence[str],
    parts: Mapping[str, Sequence[OfficialImage]],
) -> OfficialFiles:
    """Write a dataset in the official layout under ROOT (the release's `data` folder); returns its files.

    Writes, each atomically: ROOT/vcoco/vcoco_{part}.json (keys action_name, role_name ['agent', *roles],
    include, image_id, ann_id, label, role_object_id role-major with 0 for no object; one row per
    labelled person of the part, in image then person order, the same rows for every action),
    ROOT/splits/vcoco_{part}.ids (ascending image ids) and vcoco_all.ids, and ROOT/instances_vcoco_all_2014.json
    (COCO: images id/file_name/width/height, annotations id/image_id/category_id/bbox [x, y, w, h]/
    area w * h/iscrowd, categories id/name/supercategory). `categories` must hold 'person', which gets
    id 1 (vsrl_eval.py's person class is the first category), the others 2, 3, ... in the given order.
    Image ids count from 1 over the parts in the given order; annotation ids from 1. Every image needs
    at least one labelled person (as in the release: vsrl_eval.py checks the ids file against the
    labelled persons' images); labelled persons must be 'person' instances, and role objects must lie
    in their role's `include`.
    """
    root = Path(root)
    if "person" not in categories or len(set(categories)) != len(categories):
        raise ValueError("write_vcoco_official: categories must be distinct and hold 'person'")
    names = ["person", *(name for name in categories if name != "person")]
    category_id = {name: i + 1 for i, name in enumerate(names)}
    by_name = {action.name: action for action in actions}
    if len(by_name) != len(actions):
        raise ValueError("write_vcoco_official: action names must be distinct")
    for action in actions:
        if action.include and len(action.include) != len(action.roles):
            raise ValueError(f"write_vcoco_official: action '{action.name}' has include lists for other roles")
        unknown = [n for names_ in action.include for n in names_ if n not in category_id]
        if unknown:
            raise ValueError(f"write_vcoco_official: action '{action.name}' includes unknown categories {unknown}")

    coco_images, coco_annotations, part_rows = [], [], {}
    image_id, ann_id = 0, 0
    for part, images in parts.items():
        rows = []  # (image id, person ann id, {action: {role: ann id or 0}})
        for image in images:
            image_id += 1
            coco_images.append(
                {"id": image_id, "file_name": image.file_name, "width": int(image.width), "height": int(image.height)}
            )
            ids = []
            for instance in image.instances:
                if instance.category not in category_id:
                    raise ValueError(f"write_vcoco_official: {image.file_name}: unknown category '{instance.category}'")
                ann_id += 1
                ids.append(ann_id)
                x1, y1, x2, y2 = (float(v) for v in instance.box)
                coco_annotations.append({
                    "id": ann_id, "image_id": image_id, "category_id": category_id[instance.category],
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(instance.iscrowd),
                })  # fmt: skip
            if not image.persons:
                raise ValueError(
                    f"write_vcoco_official: {image.file_name}: every image needs a labelled person "
                    "(vsrl_eval.py checks the ids file against the labelled persons' images)"
                )
            for labels in image.persons:
                rows.append((image_id, ids[labels.person], _role_ids(image, labels, ids, by_name)))
        part_rows[part] = rows

    for part, rows in part_rows.items():
        entries = []
        for action in actions:
            roles = (AGENT, *action.roles)
            role_ids = [[agent for _, agent, _ in rows]]
            for role in action.roles:
                role_ids.append([labels.get(action.name, {}).get(role, 0) for _, _, labels in rows])
            entries.append({
                "image_id": [image for image, _, _ in rows],
                "ann_id": [agent for _, agent, _ in rows],
                "role_object_id": [value for ids_ in role_ids for value in ids_],  # role-major
                "label": [int(action.name in labels) for _, _, labels in rows],
                "action_name": action.name,
                "role_name": list(roles),
                "include": [[], *(list(names_) for names_ in (action.include or [()] * len(action.roles)))],
            })  # fmt: skip
        _write_json(root / "vcoco" / f"vcoco_{part}.json", entries)
        _write_ids(root / "splits" / f"vcoco_{part}.ids", sorted({image for image, _, _ in rows}))
    _write_ids(root / "splits" / "vcoco_all.ids", [image["id"] for image in coco_images])
    _write_json(
        root / COCO_FILE,
        {
            "info": {"description": "written by hoi_pipeline.datasets.vcoco_official.write_vcoco_official"},
            "licenses": [],
            "images": coco_images,
            "annotations": coco_annotations,
            "categories": [{"id": category_id[n], "name": n, "supercategory": ""} for n in names],
        },
    )
    return official_files(root, "+".join(parts))


def _role_ids(
    image: OfficialImage, labels: PersonActions, ids: list[int], by_name: Mapping[str, VCOCOAction]
) -> dict[str, dict[str, int]]:
    """{action: {role: ann id, 0 for none}} of one labelled person, checked against the action definitions."""
    if not 0 <= labels.person < len(ids) or image.instances[labels.person].category != "person":
        raise ValueError(f"write_vcoco_official: {image.file_name}: labelled instance {labels.person} is no person")
    out = {}
    for name, roles in labels.actions.items():
        if name not in by_name:
            raise ValueError(f"write_vcoco_official: {image.file_name}: unknown action '{name}'")
        action = by_name[name]
        out[name] = {}
        for role, target in roles.items():
            if role not in action.roles:
                raise ValueError(f"write_vcoco_official: {image.file_name}: action '{name}' has no role '{role}'")
            if target is None:
                continue
            if not 0 <= target < len(ids):
                raise ValueError(f"write_vcoco_official: {image.file_name}: role object {target} is no instance")
            include = action.include[action.roles.index(role)] if action.include else ()
            if include and image.instances[target].category not in include:
                raise ValueError(
                    f"write_vcoco_official: {image.file_name}: '{name} {role}' takes {list(include)}, "
                    f"not '{image.instances[target].category}'"
                )
            out[name][role] = ids[target]
    return out


def _write_json(path: Path, payload: object) -> None:
    """Compact json (as the release's files are; json's C encoder makes it fast), written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload))


def _write_ids(path: Path, ids: Sequence[int]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in ids))
