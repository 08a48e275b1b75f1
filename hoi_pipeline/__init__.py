"""hoi-pipeline: weakly-supervised HOI detection with CLIP-guided bi-level representations."""

__version__ = "0.1.0"
