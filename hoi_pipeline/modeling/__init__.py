"""The bi-level HOI model: one module per paper component, plus CLIP loading (`clip_loading`)."""
