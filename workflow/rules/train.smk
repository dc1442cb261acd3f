include: "helpers/train.smk"


# One purifier per loss variant. --resume: a retried (e.g. SIGTERM'd) job continues from <out>.resume.pt,
# which madvae keeps until the checkpoint is written; with no resume state it starts from scratch.


rule train:
    input:
        unpack(vae_input),
    output:
        vae=res(per_seed("models/vae_{variant}.pt")),
        log=res(per_seed("models/vae_{variant}.train.csv")),
        curve=res(per_seed("models/vae_{variant}.steps.csv")),
    log:
        res(per_seed("models/vae_{variant}.log", "logs")),
    benchmark:
        res(per_seed("models/vae_{variant}.tsv", "benchmarks"))
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    params:
        options=vae_options,
        device=DEVICE,
    shell:
        "madvae train {input.sets:q} {params.options} --resume --device {params.device:q} --no-progress "
        "--out {output.vae:q} > {log:q} 2>&1"
