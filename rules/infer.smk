# HOI detection tuples of a split with the trained model and the paper's score fusion.


rule infer:
    input:
        annotations=lambda w: split_files(RUNS[w.run].dataset, w.split)["annotations"],
        proposals=lambda w: proposals_path(w.run, w.split),
        checkpoint=lambda w: checkpoint_path(w.run),
    output:
        "results/{run}/detections_{split}.h5",
    params:
        config=lambda w: run_sections(w, "infer"),
        images=lambda w: split_files(RUNS[w.run].dataset, w.split)["images"],
        code=code("infer"),
    threads: 2
    resources:
        gpu=1,
    log:
        "results/logs/infer/{run}/{split}.log",
    benchmark:
        "results/benchmarks/infer/{run}/{split}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        "python -m hoi_pipeline infer --config-json {params.config:q} --annotations {input.annotations} "
        "--split {wildcards.split} --images {params.images:q} --proposals {input.proposals} "
        "--checkpoint {input.checkpoint} --out {output} > {log} 2>&1"
