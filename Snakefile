# hoi-pipeline: weakly-supervised HOI detection, end to end.
#
#   snakemake -j2 results/demo/metrics.csv           # the built-in demo (CPU, minutes)
#   snakemake -j4 results/hico_rn101/metrics.csv     # HICO-DET with CLIP RN101
#   snakemake -j4 results/hico_rn50/ablations.md     # the paper's ablation rows of a run, as one table
#   snakemake -j4 results/my_run/metrics.csv --configfile config.yaml my_runs.yaml   # your runs: targets first
#   snakemake -n results/demo/metrics.csv            # what would rerun, and why (reasons name the changed setting or file)
#
# What lands where (each file is one rule's cached output):
#   results/data/{dataset}/...                         synthetic datasets (generate_demo)
#   results/models/{model}_random-init.pt              random-init open_clip weights (init_clip)
#   results/proposals/{dataset}/{detector}/{split}.h5  human/object proposals (detect)
#   results/shared/banks/{bank}/                       knowledge bank W_T + settings.yaml (embed_prompts)
#   results/shared/train/{training}/                   model.pt, losses.csv, checkpoints/, settings.yaml (train)
#   results/shared/enhanced/{enhanced}/                model.pt, settings.yaml: Table 3 Abl 3 (enhance_with_clip)
#   results/{run}/train/, results/{run}/knowledge_bank.h5   links to the run's shared training and bank
#   results/{run}/detections_{split}.h5                HOI detection tuples (infer)
#   results/{run}/metrics.csv, per_class_ap.csv, table.md   evaluation (evaluate)
#   results/{run}/ablations/{preset}/...               the same for each ablation preset of a run
#   results/logs/..., results/benchmarks/...           each job's log and time/memory
# {bank} and {training} are addresses computed from the settings that decide them (hoi_pipeline/workflow.py):
# runs that train the same thing share one training, whatever their names or order.

configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/generate_demo.smk"
include: "rules/detect.smk"
include: "rules/embed_prompts.smk"
include: "rules/train.smk"
include: "rules/infer.smk"
include: "rules/evaluate.smk"
include: "rules/summarize.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        "results/demo/metrics.csv",
