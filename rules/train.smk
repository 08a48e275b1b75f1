# Training from image-level labels, shared by every run (and ablation preset) that trains the same thing:
# results/shared/train/{training}/ (model.pt, losses.csv, checkpoints/last.pt), seen by each run as
# results/{run}/train/ (links). A rerun resumes checkpoints/last.pt only when it is the same training (settings,
# code, inputs); otherwise the old state moves to checkpoints/superseded/<UTC time>/ and training starts afresh.


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
