# Figures and tables of a run for people: results/{run}/figures/index.md (a Markdown gallery) and the files
# Snakemake's report shows (`snakemake results/{run}/figures/index.md --report results/{run}/report.html`).
# The ablation table joins once results/{run}/ablations.csv exists (building it is a separate target).
import json
import os

from hoi_pipeline.report.paper import paper_backbone


report: "../report/workflow.rst"


rule figures:
    input:
        annotations=lambda w: run_split_file(w.run, "test", "annotations"),
        train_annotations=lambda w: run_split_file(w.run, "train", "annotations"),
        detections=lambda w: f"results/{w.run}/detections_{split_name(w.run, 'test')}.h5",
        proposals=lambda w: proposals_path(w.run, split_name(w.run, "test")),
        checkpoint=lambda w: checkpoint_path(w.run),
        metrics="results/{run}/metrics.csv",
        per_class="results/{run}/per_class_ap.csv",
        # the run's ablation table once it is built (a configured run only; ablation variants have none)
        ablations=lambda w: [
            p for p in [f"results/{w.run}/ablations.csv"] if w.run in PROJECT.runs and os.path.exists(p)
        ],
    output:
        index="results/{run}/figures/index.md",
        metrics=report(
            "results/{run}/figures/metrics.html",
            caption="../report/metrics.rst",
            category="Metrics",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "metrics"},
        ),
        training=report(
            "results/{run}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "losses and learning rates"},
        ),
        per_class=report(
            "results/{run}/figures/per_class_ap.png",
            caption="../report/per_class_ap.rst",
            category="Per-class AP",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "AP per class"},
        ),
        long_tail=report(
            "results/{run}/figures/ap_vs_training_images.png",
            caption="../report/ap_vs_training_images.rst",
            category="Per-class AP",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "AP against training images"},
        ),
        precision_recall=report(
            "results/{run}/figures/precision_recall.png",
            caption="../report/precision_recall.rst",
            category="Per-class AP",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "precision-recall"},
        ),
        qualitative=report(
            "results/{run}/figures/qualitative.png",
            caption="../report/qualitative.rst",
            category="Qualitative",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "detections"},
        ),
        ablations=report(
            "results/{run}/figures/ablations.html",
            caption="../report/ablations.rst",
            category="Ablations",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "ablation table"},
        ),
        provenance=report(
            "results/{run}/figures/provenance.html",
            caption="../report/provenance.rst",
            category="Provenance",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "provenance"},
        ),
        provenance_json="results/{run}/figures/provenance.json",
    params:
        config=lambda w: run_sections(w, "eval"),
        split=lambda w: split_name(w.run, "test"),
        train_split=lambda w: split_name(w.run, "train"),
        images=lambda w: run_split_file(w.run, "test", "images"),
        # until rule train declares losses.csv as an output, it is read beside the checkpoint it belongs to
        losses=lambda w: f"results/{wf.training_owner(RUNS, w.run)}/train/losses.csv",
        paper_backbone=lambda w: paper_backbone(PROJECT, w.run) or "",
        code_versions=json.dumps(
            {stage: code(stage) for stage in ("detect", "embed_prompts", "train", "infer", "evaluate")}
        ),
        out_dir=lambda w: f"results/{w.run}/figures",
        code=code("figures"),
    log:
        "results/logs/figures/{run}.log",
    benchmark:
        "results/benchmarks/figures/{run}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "scripts/figures.py"
