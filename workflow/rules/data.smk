include: "helpers/data.smk"


rule clean_set:
    output:
        res("sets/{dataset}_{split}.h5"),
    log:
        res("logs/sets/{dataset}_{split}.log"),
    benchmark:
        res("benchmarks/sets/{dataset}_{split}.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("data")
    resources:
        **job_resources("data"),
    params:
        options=clean_options,
    shell:
        "madvae gen --attack none --dataset {wildcards.dataset:q} --split {wildcards.split:q} {params.options} "
        "--out {output:q} > {log:q} 2>&1"
