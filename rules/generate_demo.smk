# Synthetic demo scenes: images, annotations and detector-like detections, in the HICO-DET json layout
# (family hicodet) or the official V-COCO release layout (family vcoco; hoi_pipeline/datasets/synthetic/).


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
        dataset=_alternatives(SYNTHETIC_FAMILIES["hicodet"]),
    threads: stage_threads("generate_demo")
    resources:
        **stage_resources("generate_demo"),
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
    threads: stage_threads("init_clip")
    resources:
        **stage_resources("init_clip"),
    log:
        "results/logs/init_clip/{model}.log",
    benchmark:
        "results/benchmarks/init_clip/{model}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        STAGE_SHELL


rule generate_demo_vcoco:
    output:
        coco="results/data/{dataset}/instances_vcoco_all_2014.json",
        annotations=expand("results/data/{{dataset}}/vcoco/vcoco_{part}.json", part=("train", "test")),
        ids=expand("results/data/{{dataset}}/splits/vcoco_{part}.ids", part=("train", "test", "all")),
        detections=expand("results/data/{{dataset}}/detections_{part}.json", part=("train", "test")),
        images=directory("results/data/{dataset}/images"),
    params:
        **stage_params("generate_demo"),
    wildcard_constraints:
        dataset=_alternatives(SYNTHETIC_FAMILIES["vcoco"]),
    threads: stage_threads("generate_demo")
    resources:
        **stage_resources("generate_demo"),
    log:
        "results/logs/generate_demo/{dataset}.log",
    benchmark:
        "results/benchmarks/generate_demo/{dataset}.tsv"
    conda:
        "../envs/cpu.yaml"
    shell:
        STAGE_SHELL
