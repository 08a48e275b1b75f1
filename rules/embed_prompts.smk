# The knowledge bank W_T: CLIP text embeddings of one prompt per HOI class.


rule embed_prompts:
    input:
        annotations=lambda w: run_split_file(w.run, "train", "annotations"),
        weights=lambda w: wf.local_weights(wf.bank_clip(RUNS[w.run]).pretrained),
    output:
        "results/{run}/knowledge_bank.h5",
    params:
        config=lambda w: wf.section_json({"clip": wf.bank_clip(RUNS[w.run])}),
        split=lambda w: split_name(w.run, "train"),
        code=code("embed_prompts"),
    threads: job_threads(embed_prompts_job)
    resources:
        **job_resources(embed_prompts_job),
    log:
        "results/logs/embed_prompts/{run}.log",
    benchmark:
        "results/benchmarks/embed_prompts/{run}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        "python -m hoi_pipeline embed-prompts --config-json {params.config:q} --annotations {input.annotations} "
        "--split {params.split} --out {output} > {log} 2>&1"
