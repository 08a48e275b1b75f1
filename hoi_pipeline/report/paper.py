"""The paper's headline numbers (Table 1) and which runs they apply to.

A run mirrors a paper setting when it is a configured run (not an ablation variant) on a real
dataset (not synthetic) with pretrained CLIP RN50 or RN101 weights: the backbone comes from
`clip.model` (the `-quickgelu` spelling of OpenAI weights counts as the same model) and the benchmark
from the test annotation (HICO-DET or V-COCO). Its figures then show our numbers beside these.
The paper reports HICO-DET in the Default setting only (Full / Rare / Non-Rare mAP) and V-COCO role
AP in scenarios 1 and 2; both with an off-the-shelf COCO Faster R-CNN.
"""

from __future__ import annotations

from dataclasses import dataclass

from hoi_pipeline.config import ProjectConfig

PAPER_BACKBONES = ("RN50", "RN101")


@dataclass(frozen=True)
class PaperResult:
    """Numbers of one paper setting, in percent, keyed like metrics.csv: setting -> column -> value."""

    benchmark: str  # hicodet | vcoco
    backbone: str  # RN50 | RN101
    metrics: dict[str, dict[str, float]]
    source: str = "Table 1"

    @property
    def title(self) -> str:
        return f"paper ({self.source}, CLIP {self.backbone})"


PAPER_RESULTS = (
    PaperResult("hicodet", "RN50", {"default": {"full": 22.89, "rare": 22.41, "non_rare": 23.03}}),
    PaperResult("hicodet", "RN101", {"default": {"full": 25.70, "rare": 24.52, "non_rare": 26.05}}),
    PaperResult("vcoco", "RN50", {"scenario_1": {"ap_role": 42.97}, "scenario_2": {"ap_role": 48.06}}),
    PaperResult("vcoco", "RN101", {"scenario_1": {"ap_role": 44.74}, "scenario_2": {"ap_role": 49.97}}),
)


def paper_backbone(project: ProjectConfig, run: str) -> str | None:
    """The paper backbone (RN50 or RN101) that run `run` mirrors, or None (see the module docstring)."""
    config = project.runs.get(run)
    if config is None or project.datasets[config.dataset].synthetic is not None:
        return None
    if config.clip.pretrained is None:
        return None
    model = config.clip.model.removesuffix("-quickgelu")
    return model if model in PAPER_BACKBONES else None


def paper_result(benchmark: str, backbone: str | None) -> PaperResult | None:
    """The paper's numbers for a benchmark and backbone; None when the run mirrors no paper setting."""
    if backbone is None:
        return None
    if backbone not in PAPER_BACKBONES:
        raise ValueError(f"paper backbone '{backbone}': the paper reports {list(PAPER_BACKBONES)}")
    for result in PAPER_RESULTS:
        if result.benchmark == benchmark and result.backbone == backbone:
            return result
    raise ValueError(f"the paper reports no {benchmark} result (benchmarks: hicodet, vcoco)")
