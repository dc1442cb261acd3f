include: "helpers/embed.smk"


# UMAP figures (paper section 3.4): clean inputs by true label; adversarial inputs, and each variant's latent
# and output spaces, by the label the classifier predicts.


rule embed_clean:
    input:
        set=clean_set("test"),
    output:
        png=report(
            res("figures/umap/clean_input.png"),
            caption="../report/umap_clean.rst",
            category="UMAP",
            subcategory="clean",
            labels={"attack": "none", "figure": "input, true label"},
        ),
        csv=res("figures/umap/clean_input.csv"),
    log:
        res("logs/figures/umap/clean_input.log"),
    benchmark:
        res("benchmarks/figures/umap/clean_input.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("embed")
    resources:
        **job_resources("embed"),
    params:
        prefix=embed_prefix,
        options=embed_options,
        device=DEVICE,
    shell:
        "madvae embed {input.set:q} --space input --colour true {params.options} --device {params.device:q} "
        "--out {params.prefix:q} > {log:q} 2>&1"


# One job per attack draws its inputs and every variant's latent and output spaces from the same samples:
# UMAP's numba compilation (about 20 s on 2 cores) is paid once per job instead of once per figure.
rule embed_attack:
    input:
        set=res("sets/test/{attack}.h5"),
        classifier=res("models/classifier.pt"),
        vaes=embed_vaes(),
    output:
        figures=attack_figure_reports(),
        coordinates=attack_figures("csv"),
    log:
        res("logs/figures/umap/{attack}.log"),
    benchmark:
        res("benchmarks/figures/umap/{attack}.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("embed")
    resources:
        **job_resources("embed"),
    params:
        out_dir=embed_out_dir,
        spaces=embed_space_options,
        vaes=embed_vae_options,
        options=embed_options,
        device=DEVICE,
    shell:
        "madvae embed {input.set:q} --out-dir {params.out_dir:q} --space input {params.spaces} {params.vaes} "
        "--colour predicted --classifier {input.classifier:q} {params.options} --device {params.device:q} "
        "--no-progress > {log:q} 2>&1"


# Paper Figures 5 and 6: one purifier's decoder outputs and latent means before and after one Overpowered Attack
# run (config overpowered: the preset and params of Table 3, at figure_norm) on figure_n random clean test digits,
# both figures from that run. The attack dominates the job, so it gets the attack rules' resources.
rule embed_overpowered:
    input:
        set=clean_set("test"),
        classifier=res("models/classifier.pt"),
        vae=first_seed("models/vae_{variant}.pt"),
    output:
        figures=overpowered_figure_reports(),
        coordinates=overpowered_figures("csv"),
    log:
        res("logs/figures/umap/{variant}_overpowered.log"),
    benchmark:
        res("benchmarks/figures/umap/{variant}_overpowered.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("attack")
    resources:
        **job_resources("attack"),
    params:
        out_dir=embed_out_dir,
        options=overpowered_figure_options,
        device=DEVICE,
    shell:
        "madvae embed {input.set:q} --out-dir {params.out_dir:q} --space overpowered-latent "
        "--space overpowered-output --vae {wildcards.variant:q}={input.vae:q} --classifier {input.classifier:q} --colour true {params.options} "
        "--device {params.device:q} --no-progress > {log:q} 2>&1"
