include: "helpers/data.smk"


rule clean_set:
    output:
        res("sets/{dataset}_{split}.h5"),
    params:
        options=clean_options,
    log:
        res("logs/sets/{dataset}_{split}.log"),
    benchmark:
        res("benchmarks/sets/{dataset}_{split}.tsv")
    threads: job_threads("data")
    resources:
        **job_resources("data"),
    conda:
        "../envs/madvae.yaml"
    shell:
        "madvae gen --attack none --dataset {wildcards.dataset:q} --split {wildcards.split:q} {params.options} "
        "--out {output:q} > {log:q} 2>&1"
