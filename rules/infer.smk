# HOI detection tuples of a split with the trained model and the paper's score fusion.
# With infer.shards: N > 1, N infer_shard jobs each take a block of the split's images and
# merge_detections joins them into the same file (hoi_pipeline/shards.py).


rule infer:
    input:
        unpack(infer_inputs),
    output:
        "results/{run}/detections_{split}.h5",
    params:
        config=lambda w: run_sections(w, "infer"),
        images=lambda w: split_files(RUNS[w.run].dataset, w.split)["images"],
        code=code("infer"),
    wildcard_constraints:
        run=UNSHARDED_RUNS,
    threads: job_threads(infer_job)
    resources:
        **job_resources(infer_job),
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


rule infer_shard:
    input:
        unpack(infer_inputs),
    output:
        temp("results/{run}/detections_{split}.shards/{shard}-of-{shards}.h5"),
    params:
        config=lambda w: run_sections(w, "infer"),
        images=lambda w: split_files(RUNS[w.run].dataset, w.split)["images"],
        code=code("infer"),
    wildcard_constraints:
        run=SHARDED_RUNS,
        shard=r"\d+",
        shards=r"\d+",
    threads: job_threads(infer_job)
    resources:
        **job_resources(infer_job),
    log:
        "results/logs/infer/{run}/{split}.shards/{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/infer/{run}/{split}.shards/{shard}-of-{shards}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        "python -m hoi_pipeline infer --config-json {params.config:q} --annotations {input.annotations} "
        "--split {wildcards.split} --images {params.images:q} --proposals {input.proposals} "
        "--checkpoint {input.checkpoint} --shard {wildcards.shard}/{wildcards.shards} --out {output} > {log} 2>&1"


rule merge_detections:
    input:
        lambda w: shard_files(f"results/{w.run}/detections_{w.split}", RUNS[w.run].infer.shards),
    output:
        "results/{run}/detections_{split}.h5",
    params:
        code=code("merge_shards"),
    wildcard_constraints:
        run=SHARDED_RUNS,
    threads: job_threads(merge_detections_job)
    resources:
        **job_resources(merge_detections_job),
    log:
        "results/logs/merge_detections/{run}/{split}.log",
    benchmark:
        "results/benchmarks/merge_detections/{run}/{split}.tsv"
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m hoi_pipeline merge-shards --shards {input} --out {output} > {log} 2>&1"
