# A run and all its ablation presets (hoi_pipeline/ablations.py) in one table: results/{run}/ablations.{csv,md}.


rule ablations:
    input:
        metrics=ablation_metrics,
    output:
        csv="results/{run}/ablations.csv",
        md="results/{run}/ablations.md",
    params:
        names=lambda w: ["full_model", *wf.run_ablations(PROJECT, w.run)],
        code=code("summarize"),
    wildcard_constraints:
        run="|".join(re.escape(name) for name in PROJECT.runs),
    threads: job_threads(small_job)
    resources:
        **job_resources(small_job),
    log:
        "results/logs/ablations/{run}.log",
    benchmark:
        "results/benchmarks/ablations/{run}.tsv"
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m hoi_pipeline summarize --metrics {input.metrics} --names {params.names} --out {output.csv} > {log} 2>&1"
