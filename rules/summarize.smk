# A run and all its ablation presets (hoi_pipeline/ablations.py) in one table: results/{run}/ablations.{csv,md}.


rule ablations:
    input:
        unpack(stage_inputs("summarize")),
    output:
        out="results/{run}/ablations.csv",
        md="results/{run}/ablations.md",
    params:
        **stage_params("summarize"),
    wildcard_constraints:
        run=_alternatives(PROJECT.runs),
    threads: stage_threads("summarize")
    resources:
        **stage_resources("summarize"),
    log:
        "results/logs/ablations/{run}.log",
    benchmark:
        "results/benchmarks/ablations/{run}.tsv"
    conda:
        "../envs/cpu.yaml"
    shell:
        STAGE_SHELL
