# The knowledge bank W_T: text embeddings of one prompt per HOI class, shared by every run with the same
# dataset split and text model (results/shared/banks/{bank}/, see hoi_pipeline/workflow.py).


rule embed_prompts:
    input:
        unpack(stage_inputs("embed_prompts")),
    output:
        out="results/shared/banks/{bank}/knowledge_bank.h5",
    params:
        **stage_params("embed_prompts"),
    threads: stage_threads("embed_prompts")
    resources:
        **stage_resources("embed_prompts"),
    log:
        "results/logs/embed_prompts/{bank}.log",
    benchmark:
        "results/benchmarks/embed_prompts/{bank}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        STAGE_SHELL


rule bank_settings:
    output:
        "results/shared/banks/{bank}/settings.yaml",
    threads: stage_threads("settings")
    resources:
        **stage_resources("settings"),
    log:
        "results/logs/bank_settings/{bank}.log",
    localrule: True
    run:
        wf.write_settings(output[0], wf.bank_settings(PROJECT, RUNS[WF.banks[wildcards.bank]]))
