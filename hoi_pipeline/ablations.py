"""Ablation presets: one per row of the paper's ablation tables, with the paper's numbers beside it.

A preset is `{section: {key: value}}` overrides of a run (`RunConfig` sections model, loss, infer);
`workflow.resolve_run("{run}/ablations/{preset}")` applies them and the workflow builds every preset
of a run (a preset that changes only `infer` reuses another preset's checkpoint). Each preset sets
all six switches of the paper's tables explicitly, so a row means the same on any run.

Rows (HICO-DET test, Default setting, CLIP RN50; the paper's numbers are stored with each preset):

- Table 2 (Sec. 4.4): `baseline`, `exp1` ... `exp7`, the full model (`full_model`, the run itself,
  row "ours"), `exp8` ... `exp10`. Where the text and the table disagree, the table wins (Exp 1: 20.41
  in the text, 20.31 in Table 2). Exp 9 has no SRC in Table 2, although the text calls it "the final
  model"; the preset follows the table.
- Table 4 (appendix E, KTN designs, all without score fusion): `exp11` (the union-box feature v_u
  itself instead of the bank's meta-embedding), `exp12` (uniform attention), `exp13` (sigmoid
  attention); its "ours" row is Exp 7.
- Table 5 (appendix F, top-K pseudo-positive pairs for SRC): `top5`, `top2`; its "ours (Top-1)" row
  is the full model.
- Table 3 (appendix B, CLIP knowledge integration): `abl1` (CLIP zero-shot scores of the union
  crop, nothing trained), Abl 2 = Exp 8, `abl3` (Exp 8's trained model with Abl 1's scores at
  inference, made by the enhance-with-clip stage), `abl4` (GEN-VLKT-style transfer: not implemented,
  its paper numbers only). The workflow runs Abl 1 (its training has 0 iterations: the stage saves
  the zero-shot model) and Abl 3, whose model.pt comes from the enhance-with-clip stage in place of
  training: it wraps the model.pt of Exp 8's training, shared with the run's `exp8` preset
  (`workflow.trained_run`).
- Not in the paper: single-component removals from the full model, other KTN queries and top-K,
  and `paper_literal`, the full model with every training addition the paper does not state
  switched off (`PAPER_LITERAL`, the README's "Deviations from the paper"), marked as such.

The switch columns come from the config a row runs with (`row_switches`), and a test checks that each
preset's overrides give the switches its paper row states.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hoi_pipeline.config import RunConfig

YES, NO = "✓", "-"


@dataclass(frozen=True)
class PaperResult:
    """mAP (%) the paper reports for a row (HICO-DET test, Default setting, CLIP RN50 backbone)."""

    full: float
    rare: float
    non_rare: float


@dataclass(frozen=True)
class RowSwitches:
    """The columns of the paper's Tables 2 and 4 that say what a row is (✓ on, - off, qualifiers in brackets)."""

    backbone: str  # "CLIP RN50", "RN50-FPN (COCO)"
    bank: str  # "-", "CLIP Text", "random", "RoBERTa"
    hoi_recognition: str  # "-", "✓", "✓ (freeze W_T)"
    ktn: str  # "-", "✓", "✓ (union)", "✓ (uniform)", "✓ (sigmoid)"
    score_fusion: str  # "-", "✓"
    src: str  # "-", "✓", "✓ (top-2)"


@dataclass(frozen=True)
class AblationPreset:
    """One row: its name, where the paper has it, what it is, how to build it and the paper's result."""

    name: str  # preset name: runs `{run}/ablations/{name}`
    table: str  # "Table 2", "Table 4", "Table 5", "Table 3", or "not in the paper"
    row: str  # the paper's row label ("Exp 1", "Top-2"), or a short label for rows not in the paper
    description: str
    switches: RowSwitches  # as the paper's table states them (checked against the overrides by a test)
    overrides: Mapping[str, Mapping[str, Any]] | None = field(default_factory=dict)  # None: not implemented
    paper: PaperResult | None = None  # None: not in the paper
    workflow: bool = True  # run by the workflow as `{run}/ablations/{name}` (False: a row shown, never run)

    @property
    def in_paper(self) -> bool:
        return self.paper is not None

    @property
    def implemented(self) -> bool:
        return self.overrides is not None


NOT_IN_PAPER = "not in the paper"


def switch_overrides(
    *,
    hoi_recognition: bool,
    ktn: bool,
    score_fusion: bool,
    src: bool,
    freeze_bank: bool = False,
    backbone: str = "clip",
    bank: str = "clip",
    ktn_attention: str = "softmax",
    ktn_knowledge: str = "bank",
    ktn_query: str = "union",
    top_k: int = 1,
) -> dict[str, dict[str, Any]]:
    """Overrides setting every switch of the paper's tables (model, loss and inference sections)."""
    return {
        "model": {
            "backbone_source": backbone,
            "bank_source": bank,
            "use_hoi_recognition": hoi_recognition,
            "bank_trainable": not freeze_bank,
            "use_knowledge_transfer": ktn,
            "ktn_knowledge": ktn_knowledge,
            "ktn_attention": ktn_attention,
            "ktn_query": ktn_query,
        },
        "loss": {"use_image_loss": hoi_recognition, "use_relatedness_loss": src, "relatedness_top_k": top_k},
        "infer": {"use_global_score": hoi_recognition and score_fusion, "use_relatedness_score": src},
    }


def _row(backbone: str = "CLIP RN50", bank: str = "CLIP Text", hoi: str = YES, ktn: str = YES, fusion: str = YES,
         src: str = YES) -> RowSwitches:  # fmt: skip
    return RowSwitches(backbone, bank, hoi, ktn, fusion, src)


def _merged(base: dict, extra: dict) -> dict:
    """`base` overrides with `extra`'s keys added per section."""
    return {section: {**base.get(section, {}), **extra.get(section, {})} for section in {*base, *extra}}


# every switch of README "Deviations from the paper" at the paper's literal reading (the defaults where they
# are; `train` keys: additions the paper does not state, off). Proposals are the detector section's.
PAPER_LITERAL: dict[str, dict[str, Any]] = {
    "model": {"global_logits": "inner_product", "ktn_logits": "inner_product",
              "ktn_meta_projection": "when_widths_differ", "fk_without_ktn": False, "freeze_batchnorm": False},
    "loss": {"relatedness_reduction": "sum", "relatedness_weight": 1.0, "images_without_pairs": "train_global"},
    "train": {"flip": False, "grad_clip": 0.0, "weight_decay": 0.0, "max_pairs": 100 * 99},
}  # fmt: skip

FPN = "coco_detector_fpn"  # "RN50-FPN (COCO)": the COCO Faster R-CNN's ResNet-50 with its FPN

FULL_MODEL = AblationPreset(
    name="full_model",
    table="Table 2",
    row="ours",
    description="CLIP RN50 + HOI recognition + KTN + score fusion + self-taught relatedness classification",
    switches=_row(),
    overrides=switch_overrides(hoi_recognition=True, ktn=True, score_fusion=True, src=True),
    paper=PaperResult(22.89, 22.41, 23.03),
)

TABLE2: tuple[AblationPreset, ...] = (
    AblationPreset(
        "baseline", "Table 2", "baseline",
        "v_p predicts s_p directly, trained by L_p only; no knowledge bank, no KTN, no SRC, no score fusion",
        _row(bank=NO, hoi=NO, ktn=NO, fusion=NO, src=NO),
        switch_overrides(hoi_recognition=False, ktn=False, score_fusion=False, src=False),
        PaperResult(19.52, 16.58, 20.40),
    ),
    AblationPreset(
        "exp1", "Table 2", "Exp 1", "baseline + HOI recognition (s_g, L_g; s_g not fused at inference)",
        _row(ktn=NO, fusion=NO, src=NO),
        switch_overrides(hoi_recognition=True, ktn=False, score_fusion=False, src=False),
        PaperResult(20.31, 18.34, 20.90),  # the text says 20.41; the table 20.31
    ),
    AblationPreset(
        "exp2", "Table 2", "Exp 2", "Exp 1 with the knowledge bank W_T frozen",
        _row(hoi=f"{YES} (freeze W_T)", ktn=NO, fusion=NO, src=NO),
        switch_overrides(hoi_recognition=True, ktn=False, score_fusion=False, src=False, freeze_bank=True),
        PaperResult(20.09, 18.23, 20.64),
    ),
    AblationPreset(
        "exp3", "Table 2", "Exp 3", "Exp 1 + knowledge transfer network",
        _row(fusion=NO, src=NO),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=False, src=False),
        PaperResult(20.86, 18.40, 21.60),
    ),
    AblationPreset(
        "exp4", "Table 2", "Exp 4", "Exp 3 + score fusion (the full model without SRC)",
        _row(src=NO),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=True, src=False),
        PaperResult(22.40, 20.70, 22.90),
    ),
    AblationPreset(
        "exp5", "Table 2", "Exp 5", "baseline + self-taught relatedness classification",
        _row(bank=NO, hoi=NO, ktn=NO, fusion=NO),
        switch_overrides(hoi_recognition=False, ktn=False, score_fusion=False, src=True),
        PaperResult(19.88, 17.45, 20.61),
    ),
    AblationPreset(
        "exp6", "Table 2", "Exp 6", "Exp 1 + self-taught relatedness classification",
        _row(ktn=NO, fusion=NO),
        switch_overrides(hoi_recognition=True, ktn=False, score_fusion=False, src=True),
        PaperResult(20.75, 19.38, 21.16),
    ),
    AblationPreset(
        "exp7", "Table 2", "Exp 7", "Exp 6 + knowledge transfer network (the full model without score fusion)",
        _row(fusion=NO),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=False, src=True),
        PaperResult(21.53, 20.05, 21.97),
    ),
    AblationPreset(
        "exp8", "Table 2", "Exp 8", "baseline on the COCO Faster R-CNN's ResNet-50-FPN instead of CLIP RN50",
        _row(backbone="RN50-FPN (COCO)", bank=NO, hoi=NO, ktn=NO, fusion=NO, src=NO),
        switch_overrides(hoi_recognition=False, ktn=False, score_fusion=False, src=False, backbone=FPN),
        PaperResult(19.44, 16.20, 20.41),
    ),
    AblationPreset(
        "exp9", "Table 2", "Exp 9", "RN50-FPN (COCO) backbone, random knowledge bank, HOI recognition, KTN, "
        "score fusion; no SRC (as Table 2 states)",
        _row(backbone="RN50-FPN (COCO)", bank="random", src=NO),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=True, src=False, backbone=FPN, bank="random"),
        PaperResult(19.61, 15.57, 20.82),
    ),
    AblationPreset(
        "exp10", "Table 2", "Exp 10", "the full model on the RN50-FPN (COCO) backbone with a RoBERTa knowledge bank",
        _row(backbone="RN50-FPN (COCO)", bank="RoBERTa"),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=True, src=True, backbone=FPN, bank="roberta"),
        PaperResult(20.45, 16.46, 21.65),
    ),
)  # fmt: skip

TABLE4: tuple[AblationPreset, ...] = (
    AblationPreset(
        "exp11", "Table 4", "Exp 11", "Exp 7 with the union-box feature v_u added to v_p instead of the bank's "
        "meta-embedding v_meta",
        _row(ktn=f"{YES} (union)", fusion=NO),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=False, src=True, ktn_knowledge="union"),
        PaperResult(20.69, 19.55, 21.04),
    ),
    AblationPreset(
        "exp12", "Table 4", "Exp 12", "Exp 7 with uniform attention over the bank (v_meta = mean of W_T)",
        _row(ktn=f"{YES} (uniform)", fusion=NO),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=False, src=True, ktn_attention="uniform"),
        PaperResult(21.14, 19.82, 21.53),
    ),
    AblationPreset(
        "exp13", "Table 4", "Exp 13", "Exp 7 with sigmoid instead of softmax attention over the bank",
        _row(ktn=f"{YES} (sigmoid)", fusion=NO),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=False, src=True, ktn_attention="sigmoid"),
        PaperResult(21.28, 19.27, 21.88),
    ),
)  # fmt: skip

TABLE5: tuple[AblationPreset, ...] = tuple(
    AblationPreset(
        f"top{k}", "Table 5", f"Top-{k}", f"the full model with the top {k} pairs per labelled verb as SRC positives",
        _row(src=f"{YES} (top-{k})"),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=True, src=True, top_k=k),
        paper,
    )
    for k, paper in ((5, PaperResult(22.45, 21.61, 22.70)), (2, PaperResult(22.49, 21.83, 22.69)))
)  # fmt: skip

# ------------------------------------------------------------------------------------------------
# Table 3 (appendix B): CLIP knowledge integration strategies. Abl 2 is Exp 8 (TABLE_LAYOUT), "ours"
# the full model. Abl 3's model is made by the enhance-with-clip stage from Exp 8's trained model.
_EXP8 = next(p for p in TABLE2 if p.name == "exp8")
TABLE3: tuple[AblationPreset, ...] = (
    AblationPreset(
        "abl1", "Table 3", "Abl 1", "CLIP inference score: each pair's union crop scored by CLIP against the HOI "
        "prompts, nothing trained (model.kind clip_zero_shot, train.iterations 0)",
        _row(backbone="CLIP RN50 zero-shot", hoi=NO, ktn=NO, fusion=NO, src=NO),
        {"model": {"kind": "clip_zero_shot"}, "train": {"iterations": 0},
         "infer": {"use_global_score": False, "use_relatedness_score": False, "pair_normalization": "sigmoid"}},
        PaperResult(11.84, 13.72, 11.27),
    ),
    AblationPreset(
        "abl3", "Table 3", "Abl 3", "RN50-FPN (COCO) + F_P random init. + CLIP inference score: Exp 8's trained "
        "model, its pair scores times Abl 1's at inference (enhance-with-clip stage)",
        _row(backbone="RN50-FPN (COCO) + CLIP RN50 zero-shot", bank=NO, hoi=NO, ktn=NO, fusion=NO, src=NO),
        _merged(dict(_EXP8.overrides), {"model": {"kind": "clip_enhanced"}, "infer": {"pair_normalization": "sigmoid"}}),
        PaperResult(20.56, 18.19, 21.27),
    ),
    AblationPreset(
        "abl4", "Table 3", "Abl 4", "RN50-FPN (COCO) + F_P HOI prompt init. + CLIP visual regularization "
        "(GEN-VLKT-style; not implemented, the paper's numbers only)",
        _row(backbone="RN50-FPN (COCO)", bank=NO, hoi=NO, ktn=NO, fusion=NO, src=NO),
        None,
        PaperResult(19.39, 15.12, 20.66),
    ),
)  # fmt: skip
# ------------------------------------------------------------------------------------------------

EXTRA: tuple[AblationPreset, ...] = (
    AblationPreset(
        "no_hoi_recognition", NOT_IN_PAPER, "- HOI recognition",
        "the full model without the HOI recognition network (no s_g, no L_g, hence no score fusion)",
        _row(hoi=NO, fusion=NO),
        switch_overrides(hoi_recognition=False, ktn=True, score_fusion=False, src=True),
    ),
    AblationPreset(
        "no_ktn", NOT_IN_PAPER, "- KTN", "the full model without the knowledge transfer network",
        _row(ktn=NO),
        switch_overrides(hoi_recognition=True, ktn=False, score_fusion=True, src=True),
    ),
    AblationPreset(
        "frozen_bank", NOT_IN_PAPER, "frozen W_T", "the full model with the knowledge bank W_T frozen",
        _row(hoi=f"{YES} (freeze W_T)"),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=True, src=True, freeze_bank=True),
    ),
    AblationPreset(
        "random_bank", NOT_IN_PAPER, "random W_T", "the full model (CLIP backbone) with a random knowledge bank",
        _row(bank="random"),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=True, src=True, bank="random"),
    ),
    AblationPreset(
        "ktn_pair_query", NOT_IN_PAPER, "KTN query v_p",
        "the full model with the pair feature v_p instead of the union feature v_u as the KTN query",
        _row(ktn=f"{YES} (pair query)"),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=True, src=True, ktn_query="pair"),
    ),
    AblationPreset(
        "top3", NOT_IN_PAPER, "Top-3", "the full model with the top 3 pairs per labelled verb as SRC positives",
        _row(src=f"{YES} (top-3)"),
        switch_overrides(hoi_recognition=True, ktn=True, score_fusion=True, src=True, top_k=3),
    ),
    AblationPreset(
        "paper_literal", NOT_IN_PAPER, "paper only",
        "the full model with every training addition the paper does not state switched off: no horizontal flip, "
        "no gradient clipping, no weight decay, BatchNorm statistics trained, no cap on pairs per image",
        _row(),
        _merged(switch_overrides(hoi_recognition=True, ktn=True, score_fusion=True, src=True), PAPER_LITERAL),
    ),
    AblationPreset(
        "other_text_bank", NOT_IN_PAPER, "ViT-B/32 text W_T",
        "the full model with the bank from the text tower of CLIP ViT-B/32 (OpenAI weights)",
        _row(bank="CLIP Text (ViT-B-32)"),
        _merged(switch_overrides(hoi_recognition=True, ktn=True, score_fusion=True, src=True),
                {"model": {"bank_clip_model": "ViT-B-32", "bank_clip_pretrained": "openai"}}),
    ),
)  # fmt: skip

PRESETS: dict[str, AblationPreset] = {p.name: p for p in (*TABLE2, *TABLE4, *TABLE5, *TABLE3, *EXTRA)}
# the presets the workflow runs as `{run}/ablations/{name}`
ABLATIONS: dict[str, Mapping[str, Mapping[str, Any]]] = {
    name: p.overrides for name, p in PRESETS.items() if p.overrides is not None and p.workflow
}

# how the paper lays its tables out: (preset, row label in that table); `full_model` is the run itself
TABLE_LAYOUT: dict[str, tuple[tuple[str, str], ...]] = {
    "Table 2": (
        *((p.name, p.row) for p in TABLE2[:8]),  # baseline, Exp 1-7
        (FULL_MODEL.name, "ours"),
        *((p.name, p.row) for p in TABLE2[8:]),  # Exp 8-10
    ),
    "Table 4": (*((p.name, p.row) for p in TABLE4), ("exp7", "ours (Exp 7)")),
    "Table 5": (*((p.name, p.row) for p in TABLE5), (FULL_MODEL.name, "ours (Top-1)")),
    "Table 3": (("abl1", "Abl 1"), ("exp8", "Abl 2 (Exp 8)"), ("abl3", "Abl 3"), ("abl4", "Abl 4"),
                (FULL_MODEL.name, "ours")),
    NOT_IN_PAPER: tuple((p.name, p.row) for p in EXTRA),
}


def preset(name: str) -> AblationPreset:
    """The preset of a row name (`full_model` is the run itself)."""
    if name == FULL_MODEL.name:
        return FULL_MODEL
    if name not in PRESETS:
        raise ValueError(f"unknown ablation preset '{name}'; presets: {sorted(PRESETS)}")
    return PRESETS[name]


# ------------------------------------------------------------------------------------------------
# the switch columns of a resolved run

BACKBONE_NAMES = {
    "coco_detector_fpn": "RN50-FPN (COCO)",
    "coco_detector": "RN50 (COCO detector body)",
    "imagenet": "RN50 (IN-1K)",
}
BANK_NAMES = {"clip": "CLIP Text", "random": "random", "roberta": "RoBERTa"}


def row_switches(run: RunConfig) -> RowSwitches:
    """The paper's switch columns of a resolved run (what it trains and how it scores)."""
    model, loss, infer = run.model, run.loss, run.infer
    backbone = f"CLIP {run.clip.model}" if model.backbone_source == "clip" else BACKBONE_NAMES[model.backbone_source]
    if model.kind == "clip_zero_shot":  # Table 3 Abl 1: CLIP itself scores the pairs, nothing is trained
        return RowSwitches(f"CLIP {run.clip.model} zero-shot", BANK_NAMES["clip"], NO, NO, NO, NO)
    if model.kind == "clip_enhanced":  # Table 3 Abl 3: a trained model's pair scores times CLIP's
        backbone = f"{backbone} + CLIP {run.clip.model} zero-shot"
    ktn_reads_bank = model.use_knowledge_transfer and model.ktn_knowledge == "bank"
    if not (model.use_hoi_recognition or ktn_reads_bank):
        bank = NO
    elif model.bank_source == "clip" and model.bank_clip_model:
        bank = f"CLIP Text ({model.bank_clip_model})"
    else:
        bank = BANK_NAMES[model.bank_source]
    hoi = NO if not model.use_hoi_recognition else YES if model.bank_trainable else f"{YES} (freeze W_T)"
    ktn = NO
    if model.use_knowledge_transfer:
        notes = []
        if model.ktn_knowledge == "union":
            notes.append("union")
        else:
            if model.ktn_attention != "softmax":
                notes.append(model.ktn_attention)
            if model.ktn_query != "union":
                notes.append(f"{model.ktn_query} query")
        ktn = f"{YES} ({', '.join(notes)})" if notes else YES
    fusion = YES if model.use_hoi_recognition and infer.use_global_score else NO
    trained = loss.use_relatedness_loss and loss.relatedness_weight > 0
    if trained and infer.use_relatedness_score:
        src = YES if loss.relatedness_top_k == 1 else f"{YES} (top-{loss.relatedness_top_k})"
    elif trained or infer.use_relatedness_score:
        src = f"{YES} (training only)" if trained else f"{YES} (scoring only, untrained)"
    else:
        src = NO
    return RowSwitches(backbone, bank, hoi, ktn, fusion, src)
