# Evaluation on the run's test split: metrics.csv (one row per setting), per-class AP, a Markdown table.


rule evaluate:
    input:
        unpack(stage_inputs("evaluate")),
    output:
        metrics="results/{run}/metrics.csv",
        per_class="results/{run}/per_class_ap.csv",
        table="results/{run}/table.md",
    params:
        **stage_params("evaluate"),
    threads: stage_threads("evaluate")
    resources:
        **stage_resources("evaluate"),
    log:
        "results/logs/evaluate/{run}.log",
    benchmark:
        "results/benchmarks/evaluate/{run}.tsv"
    conda:
        "../envs/cpu.yaml"
    shell:
        STAGE_SHELL
