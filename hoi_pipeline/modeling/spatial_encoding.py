"""Spatial encoding of a human-object box pair (paper appendix C, as in SCG, Zhang et al. ICCV 2021).

18 geometric cues of the pair, normalised by the image size, and their logs (36 values), fed to an
MLP giving v_sp. The cues, for human box h and object box o with centres c, widths w, heights h:

  0-3   centres      c_h.x/W, c_h.y/H, c_o.x/W, c_o.y/H
  4-7   sizes        w_h/W, h_h/H, w_o/W, h_o/H
  8-10  areas        a_h/(WH), a_o/(WH), a_o/a_h
  11-12 aspect       w_h/h_h, w_o/h_o
  13    IoU(h, o)
  14-17 direction    dx if o is right of h, dx if left, dy if below, dy if above,
                     with dx = |c_o.x - c_h.x| / w_h and dy = |c_o.y - c_h.y| / h_h
  18-35 log(cue + eps) of each of the above
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import box_area

from hoi_pipeline.modeling.layers import mlp

NUM_CUES = 18
ENCODING_DIM = 2 * NUM_CUES


def pairwise_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """IoU of matching rows: (P, 4), (P, 4) -> (P,) (the diagonal of box_iou, without the P x P matrix)."""
    top_left = torch.maximum(boxes_a[:, :2], boxes_b[:, :2])
    bottom_right = torch.minimum(boxes_a[:, 2:], boxes_b[:, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
    union = box_area(boxes_a) + box_area(boxes_b) - inter
    return inter / union.clamp(min=1e-10)


def encode_box_pairs(
    boxes_h: torch.Tensor, boxes_o: torch.Tensor, image_sizes: torch.Tensor, eps: float = 1e-10
) -> torch.Tensor:
    """(P, 4) human boxes, (P, 4) object boxes, (P, 2) image (height, width) -> (P, 36) spatial encoding."""
    boxes_h, boxes_o, image_sizes = boxes_h.float(), boxes_o.float(), image_sizes.float()
    height, width = image_sizes[:, 0], image_sizes[:, 1]
    ch_x, ch_y = (boxes_h[:, 0] + boxes_h[:, 2]) / 2, (boxes_h[:, 1] + boxes_h[:, 3]) / 2
    co_x, co_y = (boxes_o[:, 0] + boxes_o[:, 2]) / 2, (boxes_o[:, 1] + boxes_o[:, 3]) / 2
    wh, hh = boxes_h[:, 2] - boxes_h[:, 0], boxes_h[:, 3] - boxes_h[:, 1]
    wo, ho = boxes_o[:, 2] - boxes_o[:, 0], boxes_o[:, 3] - boxes_o[:, 1]
    dx = (co_x - ch_x).abs() / (wh + eps)
    dy = (co_y - ch_y).abs() / (hh + eps)
    cues = torch.stack(
        [
            ch_x / width, ch_y / height, co_x / width, co_y / height,
            wh / width, hh / height, wo / width, ho / height,
            wh * hh / (height * width), wo * ho / (height * width), wo * ho / (wh * hh + eps),
            wh / (hh + eps), wo / (ho + eps),
            pairwise_iou(boxes_h, boxes_o),
            (co_x > ch_x).float() * dx, (co_x < ch_x).float() * dx,
            (co_y > ch_y).float() * dy, (co_y < ch_y).float() * dy,
        ],
        dim=1,
    )  # (P, 18)  # fmt: skip
    return torch.cat([cues, torch.log(cues + eps)], dim=1)  # (P, 36)


class SpatialEncoder(nn.Module):
    """(P, 36) encoding -> (P, spatial_dim) v_sp (two-layer MLP with ReLU)."""

    def __init__(self, spatial_dim: int) -> None:
        super().__init__()
        self.mlp = mlp(ENCODING_DIM, spatial_dim, spatial_dim, final_relu=True)

    def forward(self, encoding: torch.Tensor) -> torch.Tensor:
        return self.mlp(encoding)
