include: "helpers/classifier.smk"


rule classifier:
    input:
        train=clean_set("train"),
        test=clean_set("test"),
    output:
        res("models/classifier.pt"),
    log:
        res("logs/models/classifier.log"),
    benchmark:
        res("benchmarks/models/classifier.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("classifier")
    resources:
        **job_resources("classifier"),
    params:
        options=classifier_options,
        device=DEVICE,
    shell:
        "madvae classifier --train {input.train:q} --test {input.test:q} {params.options} --device {params.device:q} "
        "--no-progress --out {output:q} > {log:q} 2>&1"


# Paper-mode black-box substitutes (Table 6's A-E), trained on the clean train split like the classifier.
rule substitute:
    input:
        train=clean_set("train"),
        test=clean_set("test"),
    output:
        res("models/substitute_{arch}.pt"),
    log:
        res("logs/models/substitute_{arch}.log"),
    benchmark:
        res("benchmarks/models/substitute_{arch}.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("classifier")
    resources:
        **job_resources("classifier"),
    params:
        epochs=config["blackbox"]["substitute_epochs"],
        device=DEVICE,
    shell:
        "madvae classifier --train {input.train:q} --test {input.test:q} --arch {wildcards.arch:q} "
        "--epochs {params.epochs:q} --device {params.device:q} --no-progress --out {output:q} > {log:q} 2>&1"
