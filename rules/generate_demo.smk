# Synthetic demo scenes: images, HICO-DET-format annotations and detector-like detections.


rule generate_demo:
    output:
        train="results/data/{dataset}/train.json",
        test="results/data/{dataset}/test.json",
        detections_train="results/data/{dataset}/detections_train.json",
        detections_test="results/data/{dataset}/detections_test.json",
        images=directory("results/data/{dataset}/images"),
    params:
        config=lambda w: wf.section_json({"synthetic": PROJECT.datasets[w.dataset].synthetic}),
        out=lambda w: f"results/data/{w.dataset}",
        code=code("generate_demo"),
    wildcard_constraints:
        dataset="|".join(SYNTHETIC) if SYNTHETIC else "(?!)",
    threads: job_threads(generate_demo_job)
    resources:
        **job_resources(generate_demo_job),
    log:
        "results/logs/generate_demo/{dataset}.log",
    benchmark:
        "results/benchmarks/generate_demo/{dataset}.tsv"
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m hoi_pipeline generate-demo --config-json {params.config:q} --out {params.out} > {log} 2>&1"


rule init_clip:
    output:
        "results/models/{model}_random-init.pt",
    params:
        code=code("init_clip"),
    threads: job_threads(small_job)
    resources:
        **job_resources(small_job),
    log:
        "results/logs/init_clip/{model}.log",
    benchmark:
        "results/benchmarks/init_clip/{model}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        "python -m hoi_pipeline init-clip --model {wildcards.model} --seed 0 --out {output} > {log} 2>&1"
