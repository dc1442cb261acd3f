rule clean_set:
    output:
        res("sets/{dataset}_{split}.h5"),
    params:
        options=clean_options,
    log:
        res("logs/sets/{dataset}_{split}.log"),
    benchmark:
        res("benchmarks/sets/{dataset}_{split}.tsv")
    threads: RES["data"]["cpus_per_task"]
    resources:
        mem_mb=RES["data"]["mem_mb"],
        runtime=RES["data"]["runtime"],
        cpus_per_task=RES["data"]["cpus_per_task"],
    conda:
        "../envs/madvae.yaml"
    shell:
        "madvae gen --attack none --dataset {wildcards.dataset:q} --split {wildcards.split:q} {params.options} "
        "--out {output:q} > {log:q} 2>&1"
