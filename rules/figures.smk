# Figures and tables of a run for people: results/{run}/figures/index.md (a Markdown gallery) and the files
# Snakemake's report shows (`snakemake results/{run}/figures/index.md --report results/{run}/report.html`).
# The ablation table joins once results/{run}/ablations.csv exists (building it is a separate target).


report: "../report/workflow.rst"


rule figures:
    input:
        unpack(stage_inputs("figures")),
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
        **stage_params("figures"),
    threads: stage_threads("figures")
    resources:
        **stage_resources("figures"),
    log:
        "results/logs/figures/{run}.log",
    benchmark:
        "results/benchmarks/figures/{run}.tsv"
    conda:
        "../envs/cpu.yaml"
    shell:
        STAGE_SHELL
