"""Synthetic HOI scenes for the demos: drawn people and objects whose interaction follows from geometry.

Why: a demo must run the whole pipeline (detections -> prompts -> training -> inference ->
evaluation) on a CPU in minutes, with no downloads, and still measure something real. So the scenes
are small, seeded, drawn with PIL, and the interaction of every annotated person is *decided by
where the object is relative to the person's body* and by the person's pose, as in real HOI data;
a tiny CNN can learn it, and a model that ignores geometry cannot.

Two families share the machinery:
- `hicodet_scenes`: HOI classes (verb, object) with HICO-DET's names, Rare/Non-Rare from the
  training pairs, written as HICO-DET json by the `generate-demo` stage;
- `vcoco_scenes`: V-COCO's actions and roles (agent-only actions, object and instrument roles,
  actions with both, and persons whose role object is absent), written in the official V-COCO layout.

The modules, bottom up:
  shapes        unit-coordinate drawing primitives and entities
  people        the person figure, its poses and arm poses, its key points
  objects       one entry per object class: size, drawing, colours, texture
  textures      two-colour patterns
  interactions  the class entry type (rule + placement) and which body parts a class occupies
  placements    where objects go relative to the body (shared by both families' tables)
  composition   people doing interactions, distractors, the groups of one image
  layout        groups side by side on a ground band
  rendering     background and drawing
  splitting     interactions per image, class quotas, the per-split drawing loop
  detector      the simulated object detector
"""

from hoi_pipeline.datasets.synthetic.detector import DetectorNoise
from hoi_pipeline.datasets.synthetic.hicodet_scenes import (
    RULES,
    Scene,
    SyntheticSplit,
    generate_dataset,
    generate_scenes,
    synthetic_vocabulary,
)

__all__ = [
    "RULES",
    "DetectorNoise",
    "Scene",
    "SyntheticSplit",
    "generate_dataset",
    "generate_scenes",
    "synthetic_vocabulary",
]
