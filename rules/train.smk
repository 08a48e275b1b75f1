# Training from image-level labels, shared by every run (and ablation preset) that trains the same thing:
# results/shared/train/{training}/ (model.pt, losses.csv, checkpoints/last.pt), seen by each run as
# results/{run}/train/ (links). A rerun resumes checkpoints/last.pt only when it is the same training (settings,
# code, inputs); otherwise the old state moves to checkpoints/superseded/<UTC time>/ and training starts afresh.
# A run with model.kind clip_enhanced (Table 3 Abl 3) trains nothing of its own: enhance_with_clip wraps the
# model.pt of its training with model.kind bilevel (Abl 3: Exp 8's) with CLIP's zero-shot scores, at
# results/shared/enhanced/{enhanced}/model.pt, and the run's train/model.pt links there.


rule train:
    input:
        unpack(stage_inputs("train")),
    output:
        model="results/shared/train/{training}/model.pt",
        losses="results/shared/train/{training}/losses.csv",
    params:
        **stage_params("train"),
    threads: stage_threads("train")
    resources:
        **stage_resources("train"),
    log:
        "results/logs/train/{training}.log",
    benchmark:
        "results/benchmarks/train/{training}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        STAGE_SHELL


rule training_settings:
    output:
        "results/shared/train/{training}/settings.yaml",
    threads: stage_threads("settings")
    resources:
        **stage_resources("settings"),
    log:
        "results/logs/training_settings/{training}.log",
    localrule: True
    run:
        wf.write_settings(output[0], wf.training_settings(PROJECT, RUNS[WF.trainings[wildcards.training]]))


rule enhance_with_clip:
    input:
        unpack(stage_inputs("enhance_with_clip")),
    output:
        out="results/shared/enhanced/{enhanced}/model.pt",
    params:
        **stage_params("enhance_with_clip"),  # reruns on the clip section and the stage's code (and a newer model.pt)
    wildcard_constraints:
        enhanced=_alternatives(WF.enhanced),
    threads: stage_threads("enhance_with_clip")
    resources:
        **stage_resources("enhance_with_clip"),
    log:
        "results/logs/enhance_with_clip/{enhanced}.log",
    benchmark:
        "results/benchmarks/enhance_with_clip/{enhanced}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        STAGE_SHELL


rule enhanced_settings:
    output:
        "results/shared/enhanced/{enhanced}/settings.yaml",
    wildcard_constraints:
        enhanced=_alternatives(WF.enhanced),
    threads: stage_threads("settings")
    resources:
        **stage_resources("settings"),
    log:
        "results/logs/enhanced_settings/{enhanced}.log",
    localrule: True
    run:
        wf.write_settings(output[0], wf.enhanced_settings(PROJECT, RUNS[WF.enhanced[wildcards.enhanced]]))


rule link_training:
    input:
        unpack(stage_inputs("link_training")),
    output:
        model="results/{run}/train/model.pt",
        losses="results/{run}/train/losses.csv",
        settings="results/{run}/train/settings.yaml",
        bank="results/{run}/knowledge_bank.h5",
    params:
        **WF.rerun_params("train"),  # the run's training settings: a dry run names the key that changed
    threads: stage_threads("settings")
    resources:
        **stage_resources("settings"),
    log:
        "results/logs/link_training/{run}.log",
    localrule: True
    run:
        wf.link_files([input.model, input.losses, input.settings, input.bank], list(output))
