# Tables shaped like the paper's from the evaluations (cheap local jobs): white-box (Table 1), black-box in both
# modes (Table 2), adaptive (beyond the paper): one row per attack or substitute, per metric; Overpowered (Table 3).


rule tables:
    input:
        table_evaluations,
    output:
        accuracy=report(res("tables/{table}_accuracy.csv"), caption="../report/tables.rst", category="Tables",
                        labels={"table": "{table}", "file": "accuracy (CSV)"}),
        agreement=report(res("tables/{table}_agreement.csv"), caption="../report/tables.rst", category="Tables",
                         labels={"table": "{table}", "file": "agreement (CSV)"}),
        markdown=report(res("tables/{table}.md"), caption="../report/tables.rst", category="Tables",
                        labels={"table": "{table}", "file": "both metrics (Markdown)"}),
    params:
        kind=table_kind,
        out_dir=table_dir,
    log:
        res("logs/tables/{table}.log"),
    benchmark:
        res("benchmarks/tables/{table}.tsv")
    threads: RES["report"]["cpus_per_task"]
    resources:
        mem_mb=RES["report"]["mem_mb"],
        runtime=RES["report"]["runtime"],
        cpus_per_task=RES["report"]["cpus_per_task"],
    conda:
        "../envs/madvae.yaml"
    shell:
        "madvae report {input:q} --kind {params.kind:q} --name {wildcards.table:q} --out-dir {params.out_dir:q} "
        "> {log:q} 2>&1"


rule table_overpowered:
    input:
        overpowered_evaluations(),
    output:
        csv=report(res("tables/overpowered.csv"), caption="../report/overpowered_table.rst", category="Tables",
                   labels={"table": "overpowered", "file": "metrics (CSV)"}),
        markdown=report(res("tables/overpowered.md"), caption="../report/overpowered_table.rst",
                        category="Tables", labels={"table": "overpowered", "file": "metrics (Markdown)"}),
    params:
        out_dir=table_dir,
    log:
        res("logs/tables/overpowered.log"),
    benchmark:
        res("benchmarks/tables/overpowered.tsv")
    threads: RES["report"]["cpus_per_task"]
    resources:
        mem_mb=RES["report"]["mem_mb"],
        runtime=RES["report"]["runtime"],
        cpus_per_task=RES["report"]["cpus_per_task"],
    conda:
        "../envs/madvae.yaml"
    shell:
        "madvae report {input:q} --kind overpowered --name overpowered --out-dir {params.out_dir:q} > {log:q} 2>&1"


# `make demo`: Table 1 and what it needs (classifier, attack sets, purifiers, white-box evaluations), without
# Tables 2-3, the adaptive attacks and the figures that `snakemake --cores all` (rule all) adds
rule table1:
    input:
        [res(f"tables/{pattern.format(name='whitebox')}") for pattern in ROW_TABLE_FILES],
