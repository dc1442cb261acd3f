include: "helpers/attack.smk"


# White-box evaluations of each stored test set: classifier(VAE(x)) per variant, and the classifier alone.


rule attack_defended:
    input:
        set=res("sets/test/{attack}.h5"),
        classifier=res("models/classifier.pt"),
        vae=res(per_seed("models/vae_{variant}.pt")),
    output:
        res(per_seed("eval/{variant}/{attack}.json")),
    log:
        res(per_seed("eval/{variant}/{attack}.log", "logs")),
    benchmark:
        res(per_seed("eval/{variant}/{attack}.tsv", "benchmarks"))
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("attack")
    resources:
        **job_resources("attack"),
    params:
        options=evaluate_options,
        device=DEVICE,
    shell:
        "madvae attack --set {input.set:q} --classifier {input.classifier:q} --vae {input.vae:q} "
        "--defense-name {wildcards.variant:q} {params.options} --device {params.device:q} --no-progress "
        "--out {output:q} > {log:q} 2>&1"


rule attack_undefended:
    input:
        set=res("sets/test/{attack}.h5"),
        classifier=res("models/classifier.pt"),
    output:
        res(per_seed("eval/none/{attack}.json")),
    log:
        res(per_seed("eval/none/{attack}.log", "logs")),
    benchmark:
        res(per_seed("eval/none/{attack}.tsv", "benchmarks"))
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("attack")
    resources:
        **job_resources("attack"),
    params:
        options=evaluate_options,
        device=DEVICE,
    shell:
        "madvae attack --set {input.set:q} --classifier {input.classifier:q} {params.options} "
        "--device {params.device:q} --no-progress --out {output:q} > {log:q} 2>&1"


# Black-box FGSM (Table 2). paper: crafted on substitute X and classified by X after the defense (the original
# code's white-box-on-X setting); transfer: a substitute trained from the target pipeline's answers.
rule attack_blackbox_paper:
    input:
        unpack(blackbox_paper_input),
    output:
        res(per_seed("eval/blackbox-paper/{defense}/{arch}.json")),
    log:
        res(per_seed("eval/blackbox-paper/{defense}/{arch}.log", "logs")),
    benchmark:
        res(per_seed("eval/blackbox-paper/{defense}/{arch}.tsv", "benchmarks"))
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("attack")
    resources:
        **job_resources("attack"),
    params:
        options=blackbox_options,
        device=DEVICE,
    shell:
        "madvae attack --mode blackbox-paper --set {input.set:q} --substitute {input.substitute:q} {params.options} "
        "--device {params.device:q} --no-progress --out {output:q} > {log:q} 2>&1"


rule attack_blackbox_transfer:
    input:
        unpack(defended_input),
    output:
        res(per_seed("eval/blackbox-transfer/{defense}/{arch}.json")),
    log:
        res(per_seed("eval/blackbox-transfer/{defense}/{arch}.log", "logs")),
    benchmark:
        res(per_seed("eval/blackbox-transfer/{defense}/{arch}.tsv", "benchmarks"))
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("attack")
    resources:
        **job_resources("attack"),
    params:
        options=blackbox_options,
        device=DEVICE,
    shell:
        "madvae attack --mode blackbox-transfer --set {input.set:q} --classifier {input.classifier:q} "
        "--substitute-arch {wildcards.arch:q} {params.options} --device {params.device:q} --no-progress "
        "--out {output:q} > {log:q} 2>&1"


# The Overpowered Attack (Table 3) in each purifier's latent space, with a Figure-7-like sample.
rule attack_overpowered:
    input:
        set=clean_set("test"),
        classifier=res("models/classifier.pt"),
        vae=res(per_seed("models/vae_{variant}.pt")),
    output:
        result=res(per_seed("eval/overpowered/{variant}.json")),
        figure=report(
            res(per_seed("figures/overpowered/{variant}.png")),
            caption="../report/overpowered.rst",
            category="Overpowered Attack",
            labels={"purifier": "{variant}"},
        ),
    log:
        res(per_seed("eval/overpowered/{variant}.log", "logs")),
    benchmark:
        res(per_seed("eval/overpowered/{variant}.tsv", "benchmarks"))
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("attack")
    resources:
        **job_resources("attack"),
    params:
        options=overpowered_options,
        device=DEVICE,
    shell:
        "madvae attack --mode overpowered --set {input.set:q} --classifier {input.classifier:q} --vae {input.vae:q} "
        "--defense-name {wildcards.variant:q} {params.options} --figure {output.figure:q} --device {params.device:q} "
        "--no-progress --out {output.result:q} > {log:q} 2>&1"


# Adaptive attacks through the whole defense (beyond the paper); defense none is plain PGD on the classifier.
rule attack_adaptive:
    input:
        unpack(defended_input),
    output:
        res(per_seed("eval/adaptive/{defense}/{adaptive}.json")),
    log:
        res(per_seed("eval/adaptive/{defense}/{adaptive}.log", "logs")),
    benchmark:
        res(per_seed("eval/adaptive/{defense}/{adaptive}.tsv", "benchmarks"))
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("attack")
    resources:
        **job_resources("attack"),
    params:
        options=adaptive_options,
        device=DEVICE,
    shell:
        "madvae attack --mode {wildcards.adaptive:q} --set {input.set:q} --classifier {input.classifier:q} "
        "{params.options} --device {params.device:q} --no-progress --out {output:q} > {log:q} 2>&1"


# One security-evaluation curve per adaptive attack and defense: accuracy at every eps of curves.eps
rule attack_curve:
    input:
        unpack(defended_input),
    output:
        res(per_seed("eval/curves/{defense}/{adaptive}.json")),
    log:
        res(per_seed("eval/curves/{defense}/{adaptive}.log", "logs")),
    benchmark:
        res(per_seed("eval/curves/{defense}/{adaptive}.tsv", "benchmarks"))
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("attack")
    resources:
        **job_resources("attack"),
    params:
        options=curve_options,
        device=DEVICE,
    shell:
        "madvae attack --mode {wildcards.adaptive:q} --set {input.set:q} --classifier {input.classifier:q} "
        "{params.options} --device {params.device:q} --no-progress --out {output:q} > {log:q} 2>&1"
