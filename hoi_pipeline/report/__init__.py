"""A run's figures and tables for people: the `figures` stage's library.

- `paper`: the paper's Table 1 numbers and which runs mirror a paper setting;
- `tables`: the metrics table beside the paper's, the ablation table, Markdown and HTML rendering;
- `plots`: matplotlib figures (training curves, per-class AP, long tail, precision-recall, qualitative);
- `qualitative`: which test images to show and whether each drawn tuple matches the ground truth;
- `provenance`: what made each artifact (file attributes, checkpoint info, code digests);
- `gallery`: the Markdown page linking every figure (`results/{run}/figures/index.md`).
"""
