# White-box evaluations of each stored test set: classifier(VAE(x)) per variant, and the classifier alone.


rule attack_defended:
    input:
        set=res("sets/test/{attack}.h5"),
        classifier=res("models/classifier.pt"),
        vae=res("models/vae_{variant}.pt"),
    output:
        res("eval/{variant}/{attack}.json"),
    params:
        options=evaluate_options,
        device=DEVICE,
    log:
        res("logs/eval/{variant}/{attack}.log"),
    benchmark:
        res("benchmarks/eval/{variant}/{attack}.tsv")
    threads: RES["attack"]["cpus_per_task"]
    resources:
        mem_mb=RES["attack"]["mem_mb"],
        runtime=RES["attack"]["runtime"],
        cpus_per_task=RES["attack"]["cpus_per_task"],
        gpu=RES["gpu"],
    conda:
        "../envs/madvae.yaml"
    shell:
        "madvae attack --set {input.set} --classifier {input.classifier} --vae {input.vae} "
        "--defense-name {wildcards.variant} {params.options} --device {params.device} --no-progress "
        "--out {output} > {log} 2>&1"


rule attack_undefended:
    input:
        set=res("sets/test/{attack}.h5"),
        classifier=res("models/classifier.pt"),
    output:
        res("eval/none/{attack}.json"),
    params:
        options=evaluate_options,
        device=DEVICE,
    log:
        res("logs/eval/none/{attack}.log"),
    benchmark:
        res("benchmarks/eval/none/{attack}.tsv")
    threads: RES["attack"]["cpus_per_task"]
    resources:
        mem_mb=RES["attack"]["mem_mb"],
        runtime=RES["attack"]["runtime"],
        cpus_per_task=RES["attack"]["cpus_per_task"],
        gpu=RES["gpu"],
    conda:
        "../envs/madvae.yaml"
    shell:
        "madvae attack --set {input.set} --classifier {input.classifier} {params.options} "
        "--device {params.device} --no-progress --out {output} > {log} 2>&1"
