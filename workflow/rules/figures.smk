include: "helpers/figures.smk"


# Figures beside the tables: digits before and after attack and purification (one grid per test attack, every
# purifier a row), and the purifiers' training curves.


rule samples:
    input:
        set=res("sets/test/{attack}.h5"),
        classifier=res("models/classifier.pt"),
        vaes=all_vaes(),
    output:
        png=report(
            res("figures/samples/{attack}.png"),
            caption="../report/samples.rst",
            category="Samples",
            labels={"attack": "{attack}"},
        ),
    log:
        res("logs/figures/samples/{attack}.log"),
    benchmark:
        res("benchmarks/figures/samples/{attack}.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("report")
    resources:
        **job_resources("report"),
    params:
        vaes=sample_vae_options,
        out_dir=figure_dir,
        device=DEVICE,
    shell:
        "madvae report {input.set:q} --kind samples --classifier {input.classifier:q} {params.vaes} "
        "--device {params.device:q} --name {wildcards.attack:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule curves:
    input:
        all_training_logs(),
    output:
        png=report(
            res("figures/training_curves.png"),
            caption="../report/curves.rst",
            category="Training",
            labels={"figure": "loss terms"},
        ),
    log:
        res("logs/figures/training_curves.log"),
    benchmark:
        res("benchmarks/figures/training_curves.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("report")
    resources:
        **job_resources("report"),
    params:
        logs=named_training_logs,
        out_dir=figure_dir,
    shell:
        "madvae report {params.logs} --kind curves --name training_curves --out-dir {params.out_dir:q} > {log:q} 2>&1"
