# Human and object proposals of one dataset split with one detector (shared by every run using them).


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
        "python -m hoi_pipeline detect --config-json {params.config:q} --annotations {input.annotations} "
        "--split {wildcards.split} --images {params.images:q} {params.detections} --out {output} > {log} 2>&1"
