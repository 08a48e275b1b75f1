# Evaluation on the run's test split: metrics.csv (one row per setting), per-class AP, a Markdown table.


rule evaluate:
    input:
        annotations=lambda w: run_split_file(w.run, "test", "annotations"),
        detections=lambda w: f"results/{w.run}/detections_{split_name(w.run, 'test')}.h5",
    output:
        metrics="results/{run}/metrics.csv",
        per_class="results/{run}/per_class_ap.csv",
        table="results/{run}/table.md",
    params:
        config=lambda w: run_sections(w, "eval"),
        split=lambda w: split_name(w.run, "test"),
        out_dir=lambda w: f"results/{w.run}",
        code=code("evaluate"),
    threads: job_threads(evaluate_job)
    resources:
        **job_resources(evaluate_job),
    log:
        "results/logs/evaluate/{run}.log",
    benchmark:
        "results/benchmarks/evaluate/{run}.tsv"
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m hoi_pipeline evaluate --config-json {params.config:q} --annotations {input.annotations} "
        "--split {params.split} --detections {input.detections} --out {params.out_dir} > {log} 2>&1"
