# UMAP figures (paper section 3.4): clean inputs by true label; adversarial inputs, and each variant's latent
# and output spaces, by the label the classifier predicts.


rule embed_clean:
    input:
        set=clean_set("test"),
    output:
        png=report(res("figures/umap/clean_input.png"), caption="../report/umap_clean.rst", category="UMAP",
                   subcategory="clean", labels={"attack": "none", "figure": "input, true label"}),
        csv=res("figures/umap/clean_input.csv"),
    params:
        prefix=embed_prefix,
        options=embed_options,
        device=DEVICE,
    log:
        res("logs/figures/umap/clean_input.log"),
    benchmark:
        res("benchmarks/figures/umap/clean_input.tsv")
    threads: RES["embed"]["cpus_per_task"]
    resources:
        mem_mb=RES["embed"]["mem_mb"],
        runtime=RES["embed"]["runtime"],
        cpus_per_task=RES["embed"]["cpus_per_task"],
    conda:
        "../envs/madvae.yaml"
    shell:
        "madvae embed {input.set} --space input --colour true {params.options} --device {params.device} "
        "--out {params.prefix} > {log} 2>&1"


rule embed_attack:
    input:
        set=res("sets/test/{attack}.h5"),
        classifier=res("models/classifier.pt"),
    output:
        png=report(res("figures/umap/{attack}/input.png"), caption="../report/umap_attack.rst", category="UMAP",
                   subcategory="{attack}", labels={"attack": "{attack}", "figure": "input, predicted label"}),
        csv=res("figures/umap/{attack}/input.csv"),
    params:
        prefix=embed_prefix,
        options=embed_options,
        device=DEVICE,
    log:
        res("logs/figures/umap/{attack}/input.log"),
    benchmark:
        res("benchmarks/figures/umap/{attack}/input.tsv")
    threads: RES["embed"]["cpus_per_task"]
    resources:
        mem_mb=RES["embed"]["mem_mb"],
        runtime=RES["embed"]["runtime"],
        cpus_per_task=RES["embed"]["cpus_per_task"],
    conda:
        "../envs/madvae.yaml"
    shell:
        "madvae embed {input.set} --space input --colour predicted --classifier {input.classifier} "
        "{params.options} --device {params.device} --out {params.prefix} > {log} 2>&1"


rule embed_defense:
    input:
        set=res("sets/test/{attack}.h5"),
        classifier=res("models/classifier.pt"),
        vae=res("models/vae_{variant}.pt"),
    output:
        png=report(res("figures/umap/{attack}/{variant}_{space}.png"), caption="../report/umap_defense.rst",
                   category="UMAP", subcategory="{attack}",
                   labels={"attack": "{attack}", "figure": "{variant} {space}, predicted label"}),
        csv=res("figures/umap/{attack}/{variant}_{space}.csv"),
    params:
        prefix=embed_prefix,
        options=embed_options,
        device=DEVICE,
    log:
        res("logs/figures/umap/{attack}/{variant}_{space}.log"),
    benchmark:
        res("benchmarks/figures/umap/{attack}/{variant}_{space}.tsv")
    threads: RES["embed"]["cpus_per_task"]
    resources:
        mem_mb=RES["embed"]["mem_mb"],
        runtime=RES["embed"]["runtime"],
        cpus_per_task=RES["embed"]["cpus_per_task"],
    conda:
        "../envs/madvae.yaml"
    shell:
        "madvae embed {input.set} --space {wildcards.space} --vae {input.vae} --colour predicted "
        "--classifier {input.classifier} {params.options} --device {params.device} --out {params.prefix} "
        "> {log} 2>&1"
