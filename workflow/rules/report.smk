# Table-1-shaped tables from every evaluation (a cheap local job).


rule tables:
    input:
        evaluations(),
    output:
        accuracy=report(res("tables/whitebox_accuracy.csv"), caption="../report/whitebox.rst", category="Tables",
                        labels={"table": "white-box accuracy (CSV)"}),
        agreement=report(res("tables/whitebox_agreement.csv"), caption="../report/whitebox.rst",
                         category="Tables", labels={"table": "white-box agreement (CSV)"}),
        markdown=report(res("tables/whitebox.md"), caption="../report/whitebox.rst", category="Tables",
                        labels={"table": "white-box accuracy and agreement (Markdown)"}),
    params:
        out_dir=table_dir,
    log:
        res("logs/tables/whitebox.log"),
    benchmark:
        res("benchmarks/tables/whitebox.tsv")
    threads: RES["report"]["cpus_per_task"]
    resources:
        mem_mb=RES["report"]["mem_mb"],
        runtime=RES["report"]["runtime"],
        cpus_per_task=RES["report"]["cpus_per_task"],
    conda:
        "../envs/madvae.yaml"
    shell:
        "madvae report {input} --out-dir {params.out_dir} --name whitebox > {log} 2>&1"
