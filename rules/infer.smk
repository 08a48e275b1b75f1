# HOI detection tuples of a split with the run's trained model and the paper's score fusion.
# With infer.shards: N > 1, N infer_shard jobs each take a block of the split's images and
# merge_detections joins them into the same file (hoi_pipeline/shards.py).


rule infer:
    input:
        unpack(stage_inputs("infer")),
    output:
        out="results/{run}/detections_{split}.h5",
    params:
        **stage_params("infer"),
    wildcard_constraints:
        run=UNSHARDED_RUNS,
    threads: stage_threads("infer")
    resources:
        **stage_resources("infer"),
    log:
        "results/logs/infer/{run}/{split}.log",
    benchmark:
        "results/benchmarks/infer/{run}/{split}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        STAGE_SHELL


rule infer_shard:
    input:
        unpack(stage_inputs("infer")),
    output:
        out=temp("results/{run}/detections_{split}.shards/{shard}-of-{shards}.h5"),
    params:
        **stage_params("infer"),
    wildcard_constraints:
        run=SHARDED_RUNS,
        shard=r"\d+",
        shards=r"\d+",
    threads: stage_threads("infer")
    resources:
        **stage_resources("infer"),
    log:
        "results/logs/infer/{run}/{split}.shards/{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/infer/{run}/{split}.shards/{shard}-of-{shards}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        STAGE_SHELL


rule merge_detections:
    input:
        unpack(stage_inputs("merge_shards")),
    output:
        out="results/{run}/detections_{split}.h5",
    params:
        **stage_params("merge_shards"),
    wildcard_constraints:
        run=SHARDED_RUNS,
    threads: stage_threads("merge_shards")
    resources:
        **stage_resources("merge_shards"),
    log:
        "results/logs/merge_detections/{run}/{split}.log",
    benchmark:
        "results/benchmarks/merge_detections/{run}/{split}.tsv"
    conda:
        "../envs/cpu.yaml"
    shell:
        STAGE_SHELL
