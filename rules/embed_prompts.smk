# The knowledge bank W_T: CLIP text embeddings of one prompt per HOI class.


def bank_path(run):
    return f"results/{wf.bank_owner(RUNS, run)}/knowledge_bank.h5"


rule embed_prompts:
    input:
        annotations=lambda w: split_files(RUNS[w.run].dataset, split_name(w.run, "train"))["annotations"],
        weights=lambda w: wf.local_weights(RUNS[w.run].clip.pretrained),
    output:
        "results/{run}/knowledge_bank.h5",
    params:
        config=lambda w: run_sections(w, "clip"),
        split=lambda w: split_name(w.run, "train"),
        code=code("embed_prompts"),
    log:
        "results/logs/embed_prompts/{run}.log",
    benchmark:
        "results/benchmarks/embed_prompts/{run}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        "python -m hoi_pipeline embed-prompts --config-json {params.config:q} --annotations {input.annotations} "
        "--split {params.split} --out {output} > {log} 2>&1"
