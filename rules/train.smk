# Training from image-level labels; resumes from results/{run}/train/checkpoints/last.pt.


rule train:
    input:
        annotations=lambda w: run_split_file(w.run, "train", "annotations"),
        proposals=lambda w: proposals_path(w.run, split_name(w.run, "train")),
        bank=lambda w: bank_path(w.run),
        weights=lambda w: wf.local_weights(RUNS[w.run].clip.pretrained),
    output:
        "results/{run}/train/model.pt",
    params:
        config=lambda w: run_sections(w, "clip", "model", "loss", "train"),
        split=lambda w: split_name(w.run, "train"),
        images=lambda w: run_split_file(w.run, "train", "images"),
        out_dir=lambda w: f"results/{w.run}/train",
        launcher=lambda w: wf.train_launcher(RUNS[w.run].train),
        code=code("train"),
    threads: job_threads(train_job)
    resources:
        **job_resources(train_job),
    log:
        "results/logs/train/{run}.log",
    benchmark:
        "results/benchmarks/train/{run}.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        "{params.launcher} hoi_pipeline train --config-json {params.config:q} --annotations {input.annotations} "
        "--split {params.split} --images {params.images:q} --proposals {input.proposals} --bank {input.bank} "
        "--out-dir {params.out_dir} > {log} 2>&1"
