# Human and object proposals of one dataset split with one detector (shared by every run using them).
# With detector.shards: N > 1, N detect_shard jobs each take a block of the split's images and
# merge_proposals joins them into the same file (hoi_pipeline/shards.py).


rule detect:
    input:
        unpack(stage_inputs("detect")),
    output:
        out="results/proposals/{dataset}/{detector}/{split}.h5",
    params:
        **stage_params("detect"),
    wildcard_constraints:
        detector=UNSHARDED_DETECTORS,
    threads: stage_threads("detect")
    resources:
        **stage_resources("detect"),
    log:
        "results/logs/detect/{dataset}/{detector}/{split}.log",
    benchmark:
        "results/benchmarks/detect/{dataset}/{detector}/{split}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        STAGE_SHELL


rule detect_shard:
    input:
        unpack(stage_inputs("detect")),
    output:
        out=temp("results/proposals/{dataset}/{detector}/{split}.shards/{shard}-of-{shards}.h5"),
    params:
        **stage_params("detect"),
    wildcard_constraints:
        detector=SHARDED_DETECTORS,
        shard=r"\d+",
        shards=r"\d+",
    threads: stage_threads("detect")
    resources:
        **stage_resources("detect"),
    log:
        "results/logs/detect/{dataset}/{detector}/{split}.shards/{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/detect/{dataset}/{detector}/{split}.shards/{shard}-of-{shards}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        STAGE_SHELL


rule merge_proposals:
    input:
        unpack(stage_inputs("merge_shards")),
    output:
        out="results/proposals/{dataset}/{detector}/{split}.h5",
    params:
        **stage_params("merge_shards"),
    wildcard_constraints:
        detector=SHARDED_DETECTORS,
    threads: stage_threads("merge_shards")
    resources:
        **stage_resources("merge_shards"),
    log:
        "results/logs/merge_proposals/{dataset}/{detector}/{split}.log",
    benchmark:
        "results/benchmarks/merge_proposals/{dataset}/{detector}/{split}.tsv"
    conda:
        "../envs/cpu.yaml"
    shell:
        STAGE_SHELL
