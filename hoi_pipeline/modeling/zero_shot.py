"""Training-free CLIP HOI scores of each human-object pair (paper appendix B, Table 3 "Abl 1").

"For each human-object pair, we directly infer the HOI scores with CLIP by computing the cross-modal
similarities between their visual union region and the HOI prompts." The paper gives no more detail;
what this module does, step by step, for an image's P pairs (every human with every other proposal,
as in the bi-level model):

    x_u      = union box of the pair, widened to a square around its centre (keeps the aspect ratio;
               CLIP saw square crops), in the model's letterboxed input
    crop     = RoI-Align of x_u from the normalised input image -> S x S (S = the CLIP model's own
               input size, e.g. 224 for RN50; sampling adaptive, so large boxes are averaged, not aliased);
               pixels outside the image are 0 = the mean colour, as in the letterbox padding
    v_u      = CLIP image embedding of the crop (the visual tower and its attention pool)   (P, D)
    sim      = cos(v_u, W_T)  against the N HOI prompt embeddings (the knowledge bank file)  (P, N)
    q        = softmax over the N HOI classes of 100 * sim                                    (P, N)
               (CLIP zero-shot classification among all HOI prompts; 100 is OpenAI CLIP's logit scale)
    s_p[p,a] = logit(q[p, hoi(a, c_o)])   for the verbs a that form an HOI class with the pair's
               detected object class c_o; verbs that do not are never turned into tuples    (P, A)

The model's output is a `ModelOutput` like the bi-level model's, so the unchanged infer stage scores
it: s_g and s_b are zeros and the preset switches them off (`infer.use_global_score: false`,
`use_relatedness_score: false`), and `infer.pair_normalization: sigmoid` makes the pair factor
e_p = sigmoid(s_p) = q, each pair alone (the paper's softmax over an image's pairs is for trained
MIL scores). The final score is then R = (s_h * s_o) ** gamma * q (paper Eq. 3 with only those two
factors). Softmax over all N classes, not only the detected object's, lets CLIP disagree with the
detector: "ride horse" scores low on a pair whose object CLIP sees as a bicycle.

Crops are cut from the letterboxed model input, so their sharpness follows the input size (the
preprocessing of the run); they are always encoded at the CLIP model's own size, whatever
`clip.image_size` says (the attention pool's positional embedding is interpolated to the crop's grid).
CLIP ResNet towers only (RN50, RN101, ...), like the bi-level model.

Nothing here is trained. The visual tower's parameters stay ordinary parameters only so that the
training stage can build its optimizer (with `train.iterations: 0` it saves this model as model.pt);
forward runs without gradients, so no optimizer step could move them.

`CLIPEnhancedModel` (Table 3 "Abl 3") multiplies a trained model's pair scores by these q at inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from hoi_pipeline.config import ClipConfig, ModelConfig
from hoi_pipeline.modeling.backbone import CLIPResNetBackbone
from hoi_pipeline.modeling.knowledge_bank import KnowledgeBank
from hoi_pipeline.modeling.pairing import BatchPairs, pair_images, union_boxes
from hoi_pipeline.scoring import batch_pair_scores
from hoi_pipeline.structures import ModelOutput, Vocabulary

CLIP_LOGIT_SCALE = 100.0  # exp(logit_scale) of every released OpenAI CLIP model (clamped there at 100)
CROP_BATCH = 256  # crops encoded per forward pass of the visual tower (bounds memory with many pairs)
# probabilities are clamped to [LOW, HIGH] before the logit: s_p stays finite and sigmoid(s_p) gives them
# back in float32 (a softmax over 600 classes at scale 100 reaches 1e-20: a larger floor would tie them)
PROBABILITY_LOW, PROBABILITY_HIGH = 1e-30, 1.0 - 1e-7


def probability_logit(probabilities: torch.Tensor) -> torch.Tensor:
    """logit(p) of float32 probabilities, clamped so that sigmoid of the result returns p."""
    p = probabilities.float().clamp(PROBABILITY_LOW, PROBABILITY_HIGH)
    return torch.log(p) - torch.log1p(-p)


def square_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """(K, 4) boxes -> (K, 4) squares with the same centres and side max(width, height)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # (K, 2)
    half = (boxes[:, 2:] - boxes[:, :2]).amax(dim=1, keepdim=True) / 2  # (K, 1)
    return torch.cat([centre - half, centre + half], dim=1)


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, box_image: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) images, (K, 4) boxes of images `box_image` (K,) -> (K, 3, size, size) resampled crops."""
    rois = torch.cat([box_image[:, None].to(images.dtype), boxes.to(images.dtype)], dim=1)  # (K, 5)
    return roi_align(images, rois, (size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def zero_shot_pair_logits(
    similarities: torch.Tensor, object_labels: torch.Tensor, hoi_lookup: torch.Tensor, logit_scale: float
) -> torch.Tensor:
    """(P, N) cosine similarities, (P,) object classes, (A, O) HOI lookup -> (P, A) s_p = logit(q).

    q = softmax over the N classes of logit_scale * similarity, read at each verb's HOI class with the
    pair's object; verbs without such a class get the lowest logit (the fusion never reads them).
    """
    probabilities = torch.softmax(logit_scale * similarities.float(), dim=1)  # (P, N)
    hoi = hoi_lookup[:, object_labels].T  # (P, A), -1 where (verb, object) is not a class
    q = probabilities.gather(1, hoi.clamp(min=0)) * (hoi >= 0)  # (P, A)
    return probability_logit(q)


class CLIPZeroShotModel(nn.Module):
    """CLIP scores of every pair's union crop against the HOI prompts; see the module docstring."""

    def __init__(
        self,
        *,
        backbone: CLIPResNetBackbone,
        bank: KnowledgeBank,
        vocabulary: Vocabulary,
        crop_size: int,
        max_pairs: int = 256,
        logit_scale: float = CLIP_LOGIT_SCALE,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.bank = bank
        self.crop_size = crop_size
        self.max_pairs = max_pairs
        self.logit_scale = logit_scale
        self.person = vocabulary.person
        self.num_verbs = vocabulary.num_verbs
        # derived from the vocabulary (stored in model.pt beside the weights), so not in the state dict
        self.register_buffer("hoi_lookup", torch.from_numpy(vocabulary.hoi_lookup()), persistent=False)

    def train(self, mode: bool = True) -> CLIPZeroShotModel:
        """Nothing trains: the model stays in eval mode (CLIP's BatchNorm statistics never change)."""
        return super().train(False)

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(the visual tower's parameters, nothing): what the training stage's optimizer is built from."""
        return list(self.backbone.parameters()), []

    @torch.no_grad()
    def encode_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """(K, 3, S, S) normalised crops -> (K, D) L2-normalised CLIP image embeddings, in chunks."""
        parts = []
        for start in range(0, crops.shape[0], CROP_BATCH):
            features = self.backbone(crops[start : start + CROP_BATCH])["layer4"]  # (k, C4, S/32, S/32)
            parts.append(F.normalize(self.backbone.pool(features).float(), dim=-1))  # (k, D)
        return torch.cat(parts) if parts else crops.new_zeros((0, self.bank.dim))

    @torch.no_grad()
    def forward(
        self,
        images: torch.Tensor,
        boxes: Sequence[torch.Tensor],
        labels: Sequence[torch.Tensor],
        scores: Sequence[torch.Tensor] | None = None,
        image_sizes: torch.Tensor | None = None,
        max_pairs: int | None = None,
        pairs: BatchPairs | None = None,
    ) -> ModelOutput:
        """Same inputs and output type as `BiLevelHOIModel.forward`; s_g and s_b are zeros."""
        batch, device = images.shape[0], images.device
        if len(boxes) != batch or len(labels) != batch:
            raise ValueError(f"got {batch} images but {len(boxes)} box sets and {len(labels)} label sets")
        pairs = (self.pair_batch(labels, scores, max_pairs) if pairs is None else pairs).to(device)
        pair_image = pairs.pair_image
        global_logits = torch.zeros(batch, self.bank.num_classes, device=device)  # (B, N), switched off
        if len(pairs) == 0:
            empty = global_logits.new_zeros((0, self.num_verbs))
            return ModelOutput(global_logits, empty, empty[:, 0], pairs.pairs, pair_image)

        flat_boxes = torch.cat([b.to(device=device, dtype=torch.float32) for b in boxes])  # (M, 4)
        flat_labels = torch.cat([lab.to(device) for lab in labels]).long()  # (M,)
        boxes_h, boxes_o = flat_boxes[pairs.flat[:, 0]], flat_boxes[pairs.flat[:, 1]]  # (P, 4)
        object_labels = flat_labels[pairs.flat[:, 1]]  # (P,)
        crops = crop_boxes(images.float(), square_boxes(union_boxes(boxes_h, boxes_o)), pair_image, self.crop_size)
        v_u = self.encode_crops(crops.to(images.dtype))  # (P, D)
        similarities = v_u @ F.normalize(self.bank.weight.float(), dim=-1).T  # (P, N)
        pair_logits = zero_shot_pair_logits(similarities, object_labels, self.hoi_lookup, self.logit_scale)
        return ModelOutput(global_logits, pair_logits, pair_logits.new_zeros(len(pairs)), pairs.pairs, pair_image)

    def pair_batch(
        self,
        labels: Sequence[torch.Tensor],
        scores: Sequence[torch.Tensor] | None = None,
        max_pairs: int | None = None,
    ) -> BatchPairs:
        """The pairs the bi-level model would score (`pairing.pair_images`)."""
        return pair_images(labels, self.person, scores, self.max_pairs if max_pairs is None else max_pairs)


class CLIPEnhancedModel(nn.Module):
    """Table 3 Abl 3: a trained model's pair scores times the CLIP scores of Abl 1, at inference only.

    "We directly enhance baseline scores in Abl 2 with the CLIP similarity scores in Abl 1 on the
    inference stage" (appendix B): per image, e_p of the trained model (paper Sec. 3.2.5, sigmoid of the
    best pair times the softmax over the image's pairs) is multiplied by the CLIP probability q of the
    same pair and verb, and returned as s_p = logit(e_p * q), so the infer stage with
    `infer.pair_normalization: sigmoid` uses e_p * q as the pair factor; s_g and s_b are the trained
    model's (Abl 2 switches them off). The input was normalised for the trained model; the CLIP scorer
    gets it renormalised with CLIP's mean and std (buffers, stored in model.pt). Made from a trained
    model.pt by the enhance-with-clip stage (`hoi_pipeline/stages/enhance_with_clip.py`); nothing trains.
    """

    def __init__(
        self,
        *,
        base: nn.Module,
        scorer: CLIPZeroShotModel,
        input_mean: Sequence[float],
        input_std: Sequence[float],
        clip_mean: Sequence[float],
        clip_std: Sequence[float],
    ) -> None:
        super().__init__()
        self.base = base
        self.scorer = scorer
        self.bank = base.bank  # `bank.weight`: the trained model's bank, the key model.pt is checked for
        # x_clip = (pixel - clip_mean) / clip_std = x * scale + shift, per channel
        input_mean, input_std = torch.tensor(input_mean), torch.tensor(input_std)
        clip_mean, clip_std = torch.tensor(clip_mean), torch.tensor(clip_std)
        self.register_buffer("renormalize_scale", (input_std / clip_std).view(1, 3, 1, 1))
        self.register_buffer("renormalize_shift", ((input_mean - clip_mean) / clip_std).view(1, 3, 1, 1))

    def pair_batch(
        self,
        labels: Sequence[torch.Tensor],
        scores: Sequence[torch.Tensor] | None = None,
        max_pairs: int | None = None,
    ) -> BatchPairs:
        return self.base.pair_batch(labels, scores, max_pairs)

    def train(self, mode: bool = True) -> CLIPEnhancedModel:
        """Nothing trains: eval mode always."""
        return super().train(False)

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        return list(self.parameters()), []

    @torch.no_grad()
    def forward(
        self,
        images: torch.Tensor,
        boxes: Sequence[torch.Tensor],
        labels: Sequence[torch.Tensor],
        scores: Sequence[torch.Tensor] | None = None,
        image_sizes: torch.Tensor | None = None,
        max_pairs: int | None = None,
        pairs: BatchPairs | None = None,
    ) -> ModelOutput:
        pairs = self.pair_batch(labels, scores, max_pairs) if pairs is None else pairs  # one set for both models
        out = self.base(images, boxes, labels, scores, image_sizes, max_pairs, pairs=pairs)
        clip_images = images.float() * self.renormalize_scale + self.renormalize_shift
        clip_out = self.scorer(clip_images, boxes, labels, scores, image_sizes, max_pairs, pairs=pairs)
        e_p = batch_pair_scores(out.pair_logits, out.pair_image, images.shape[0])  # (P, A) per image, as in Eq. 3
        pair_logits = probability_logit(e_p * torch.sigmoid(clip_out.pair_logits))
        return ModelOutput(out.global_logits, pair_logits, out.relatedness_logits, out.pairs, out.pair_image)


def native_image_size(clip: ClipConfig) -> int:
    """The input side the CLIP model was trained at (its open_clip config), whatever `clip.image_size` says."""
    import open_clip

    from hoi_pipeline.modeling.clip_loading import register_model_configs

    register_model_configs()
    config = open_clip.get_model_config(clip.model)
    if config is None:
        raise ValueError(f"clip.model: '{clip.model}' is not an open_clip model name")
    size = config["vision_cfg"]["image_size"]
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def build_zero_shot_model(
    *,
    clip: ClipConfig,
    vocabulary: Vocabulary,
    bank_embeddings: torch.Tensor | None,
    max_pairs: int = 256,
    visual: nn.Module | None = None,
    pretrained: bool = True,
) -> CLIPZeroShotModel:
    """The Abl 1 model of a config: `visual` (or `load_clip(clip)`'s visual tower) and the prompt bank.

    bank_embeddings (N, D): the knowledge bank file's CLIP text embeddings of the HOI prompts; they must
    come from the same CLIP model as the visual tower (same joint space). `pretrained=False` builds
    the architecture only (model.pt fills it); then a None bank is a zero placeholder of the right shape.
    """
    if bank_embeddings is None and pretrained:
        raise ValueError("model.kind 'clip_zero_shot' needs the knowledge bank (CLIP text embeddings of the prompts)")
    if visual is None:
        import dataclasses

        from hoi_pipeline.modeling.clip_loading import load_clip

        visual = load_clip(clip if pretrained else dataclasses.replace(clip, pretrained=None)).visual
    backbone = CLIPResNetBackbone(visual)
    if bank_embeddings is None:
        bank_embeddings = torch.zeros(vocabulary.num_classes, backbone.embed_dim)
    if backbone.embed_dim != bank_embeddings.shape[1]:
        raise ValueError(
            f"model.kind 'clip_zero_shot': the bank's width {bank_embeddings.shape[1]} is not CLIP {clip.model}'s "
            f"embedding width {backbone.embed_dim}; embed the prompts with the same CLIP model (bank_source: clip)"
        )
    bank = KnowledgeBank(torch.as_tensor(bank_embeddings), trainable=False)
    return CLIPZeroShotModel(
        backbone=backbone, bank=bank, vocabulary=vocabulary, crop_size=native_image_size(clip), max_pairs=max_pairs
    )


def build_table3_model(
    *,
    clip: ClipConfig,
    model: ModelConfig,
    vocabulary: Vocabulary,
    bank_embeddings: torch.Tensor | None,
    max_pairs: int = 256,
    seed: int = 0,
    visual: nn.Module | None = None,
    pretrained: bool = True,
) -> nn.Module:
    """`build_model` for `model.kind` clip_zero_shot (Abl 1) and clip_enhanced (Abl 3, rebuilt from model.pt only)."""
    if model.kind == "clip_zero_shot":
        return build_zero_shot_model(clip=clip, vocabulary=vocabulary, bank_embeddings=bank_embeddings,
                                     max_pairs=max_pairs, visual=visual, pretrained=pretrained)  # fmt: skip
    if model.kind != "clip_enhanced":
        raise ValueError(f"model.kind: '{model.kind}' is not a Table 3 model kind")
    if pretrained:
        raise ValueError(
            "model.kind 'clip_enhanced' is made from a trained model.pt by the enhance-with-clip stage, not trained"
        )
    import dataclasses

    from hoi_pipeline.modeling.model import build_model

    base = build_model(clip=clip, model=dataclasses.replace(model, kind="bilevel"), vocabulary=vocabulary,
                       bank_embeddings=bank_embeddings, max_pairs=max_pairs, seed=seed, pretrained=False)  # fmt: skip
    scorer = build_zero_shot_model(clip=clip, vocabulary=vocabulary, bank_embeddings=None, max_pairs=max_pairs,
                                   pretrained=False)  # fmt: skip
    ones = (1.0, 1.0, 1.0)  # placeholders: the renormalisation buffers come from model.pt
    return CLIPEnhancedModel(base=base, scorer=scorer, input_mean=ones, input_std=ones, clip_mean=ones, clip_std=ones)
