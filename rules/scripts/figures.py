# Runs the figures stage for rule `figures` until `python -m hoi_pipeline figures` exists; then the rule's
# `script:` becomes the `shell:` command documented in hoi_pipeline/stages/figures.py and this file goes.
import json
import logging
from pathlib import Path

from hoi_pipeline.config import EvalConfig, from_dict
from hoi_pipeline.stages import figures

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)
inputs, params = snakemake.input, snakemake.params
figures.run(
    eval_config=from_dict(EvalConfig, json.loads(params.config)["eval"], "eval"),
    run_name=snakemake.wildcards.run,
    annotations=Path(inputs.annotations),
    split=params.split,
    train_annotations=Path(inputs.train_annotations),
    train_split=params.train_split,
    images=Path(params.images),
    detections=Path(inputs.detections),
    proposals=Path(inputs.proposals),
    checkpoint=Path(inputs.checkpoint),
    losses=Path(params.losses),
    metrics=Path(inputs.metrics),
    per_class=Path(inputs.per_class),
    out_dir=Path(params.out_dir),
    ablations=Path(inputs.ablations[0]) if inputs.ablations else None,
    paper_backbone=params.paper_backbone or None,
    code_versions=json.loads(params.code_versions),
)
