# HOI detection tuples of a split with the run's trained model and the paper's score fusion.


rule infer:
    input:
        unpack(stage_inputs("infer")),
    output:
        out="results/{run}/detections_{split}.h5",
    params:
        **stage_params("infer"),
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
        STAGE_SHELL
