# Human and object proposals of one dataset split with one detector (shared by every run using them).


rule detect:
    input:
        unpack(stage_inputs("detect")),
    output:
        out="results/proposals/{dataset}/{detector}/{split}.h5",
    params:
        **stage_params("detect"),
    threads: 2
    resources:
        gpu=lambda w: int(PROJECT.detectors[w.detector].backend != "precomputed"),
    log:
        "results/logs/detect/{dataset}/{detector}/{split}.log",
    benchmark:
        "results/benchmarks/detect/{dataset}/{detector}/{split}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        STAGE_SHELL
