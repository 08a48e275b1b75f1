# Synthetic demo scenes: images, HICO-DET-format annotations and detector-like detections.


rule generate_demo:
    output:
        train="results/data/{dataset}/train.json",
        test="results/data/{dataset}/test.json",
        detections_train="results/data/{dataset}/detections_train.json",
        detections_test="results/data/{dataset}/detections_test.json",
        images=directory("results/data/{dataset}/images"),
    params:
        **stage_params("generate_demo"),
    wildcard_constraints:
        dataset=_alternatives(SYNTHETIC),
    log:
        "results/logs/generate_demo/{dataset}.log",
    benchmark:
        "results/benchmarks/generate_demo/{dataset}.tsv"
    conda:
        "../envs/cpu.yaml"
    shell:
        STAGE_SHELL


rule init_clip:
    output:
        out="results/models/{model}_random-init.pt",
    params:
        **stage_params("init_clip"),
    log:
        "results/logs/init_clip/{model}.log",
    benchmark:
        "results/benchmarks/init_clip/{model}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        STAGE_SHELL
