# hoi-pipeline: weakly-supervised HOI detection, end to end.
#
#   snakemake -j2 results/demo/metrics.csv           # the built-in demo (CPU, minutes)
#   snakemake -j4 results/hico_rn101/metrics.csv     # HICO-DET with CLIP RN101
#   snakemake -j4 results/hico_rn50/ablations.md     # every ablation preset of a run, as one table
#
# What lands where (each file is one rule's cached output):
#   results/data/{dataset}/...                           synthetic datasets (generate_demo)
#   results/models/{model}_random-init.pt                random-init open_clip weights (init_clip)
#   results/proposals/{dataset}/{detector}/{split}.h5    human/object proposals (detect)
#   results/{run}/knowledge_bank.h5                      CLIP prompt embeddings W_T (embed_prompts)
#   results/{run}/train/model.pt                         trained model; train/checkpoints/last.pt resumes
#   results/{run}/detections_{split}.h5                  HOI detection tuples (infer)
#   results/{run}/metrics.csv, per_class_ap.csv, table.md   evaluation (evaluate)
#   results/{run}/ablations/{preset}/...                 the same for each ablation preset of a run
#   results/logs/..., results/benchmarks/...             each job's log and time/memory
# A run may reuse another run's bank or checkpoint when the settings they depend on are equal.

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
