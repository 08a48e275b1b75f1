# Human and object proposals of one dataset split with one detector (shared by every run using them).
# With detector.shards: N > 1, N detect_shard jobs each take a block of the split's images and
# merge_proposals joins them into the same file (hoi_pipeline/shards.py).


rule detect:
    input:
        unpack(detect_inputs),
    output:
        "results/proposals/{dataset}/{detector}/{split}.h5",
    params:
        config=lambda w: wf.section_json({"detector": PROJECT.detectors[w.detector]}),
        images=lambda w: split_files(w.dataset, w.split)["images"],
        detections=detections_option,
        code=code("detect"),
    wildcard_constraints:
        detector=UNSHARDED_DETECTORS,
    threads: job_threads(detect_job)
    resources:
        **job_resources(detect_job),
    log:
        "results/logs/detect/{dataset}/{detector}/{split}.log",
    benchmark:
        "results/benchmarks/detect/{dataset}/{detector}/{split}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        "python -m hoi_pipeline detect --config-json {params.config:q} --annotations {input.annotations} "
        "--split {wildcards.split} --images {params.images:q} {params.detections} --out {output} > {log} 2>&1"


rule detect_shard:
    input:
        unpack(detect_inputs),
    output:
        temp("results/proposals/{dataset}/{detector}/{split}.shards/{shard}-of-{shards}.h5"),
    params:
        config=lambda w: wf.section_json({"detector": PROJECT.detectors[w.detector]}),
        images=lambda w: split_files(w.dataset, w.split)["images"],
        detections=detections_option,
        code=code("detect"),
    wildcard_constraints:
        detector=SHARDED_DETECTORS,
        shard=r"\d+",
        shards=r"\d+",
    threads: job_threads(detect_job)
    resources:
        **job_resources(detect_job),
    log:
        "results/logs/detect/{dataset}/{detector}/{split}.shards/{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/detect/{dataset}/{detector}/{split}.shards/{shard}-of-{shards}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        "python -m hoi_pipeline detect --config-json {params.config:q} --annotations {input.annotations} "
        "--split {wildcards.split} --images {params.images:q} {params.detections} "
        "--shard {wildcards.shard}/{wildcards.shards} --out {output} > {log} 2>&1"


rule merge_proposals:
    input:
        lambda w: shard_files(f"results/proposals/{w.dataset}/{w.detector}/{w.split}", PROJECT.detectors[w.detector].shards),
    output:
        "results/proposals/{dataset}/{detector}/{split}.h5",
    params:
        code=code("merge_shards"),
    wildcard_constraints:
        detector=SHARDED_DETECTORS,
    threads: job_threads(merge_proposals_job)
    resources:
        **job_resources(merge_proposals_job),
    log:
        "results/logs/merge_proposals/{dataset}/{detector}/{split}.log",
    benchmark:
        "results/benchmarks/merge_proposals/{dataset}/{detector}/{split}.tsv"
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m hoi_pipeline merge-shards --shards {input} --out {output} > {log} 2>&1"
