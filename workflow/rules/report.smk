include: "helpers/report.smk"


# Tables shaped like the paper's from the evaluations (cheap local jobs): white-box (Table 1), black-box in both
# modes (Table 2), adaptive (beyond the paper): one row per attack or substitute, per metric; Overpowered (Table 3).
# With report.paper, Tables 1-3 also go beside the paper's (madvae report --paper; check_config allows it on
# full MNIST only, which madvae would refuse otherwise).

PAPER = config["report"]["paper"]
# those of Tables 1-3 that the config makes, when they go beside the paper's
PAPER_TABLES = [name for name in ("whitebox", "blackbox_paper") if PAPER and ROW_TABLES[name][1]()]
PAPER_TABLES += ["overpowered"] if PAPER and overpowered_evaluations() else []
PAPER_FILES = {
    "paper_markdown": ("paper.md", "beside the paper's (Markdown)"),
    "paper_csv": ("paper.csv", "beside the paper's (CSV)"),
    "claims": ("claims.csv", "the paper's claims checked (CSV)"),
}
PAPER_TARGETS = {name: [res(f"tables/{name}_{suffix}") for suffix, _ in PAPER_FILES.values()] for name in PAPER_TABLES}
# outputs as the HTML report lists them; constants, since the linter wants no functions beside rules
ROW_TABLE_OUTPUTS = {
    key: report(
        res(f"tables/{{table}}{suffix}"),
        caption="../report/tables.rst",
        category="Tables",
        labels={"table": "{table}", "file": label},
    )
    for key, (suffix, label) in {
        "accuracy": ("_accuracy.csv", "accuracy (CSV)"),
        "agreement": ("_agreement.csv", "agreement (CSV)"),
        "markdown": (".md", "both metrics (Markdown)"),
    }.items()
}
PAPER_OUTPUTS = {
    name: {
        key: report(
            res(f"tables/{name}_{suffix}"),
            caption="../report/paper_tables.rst",
            category="Tables",
            labels={"table": name, "file": label},
        )
        for key, (suffix, label) in PAPER_FILES.items()
    }
    for name in ("{table}", "overpowered")
}


localrules:
    tables_paper,


rule tables:
    input:
        table_evaluations,
    output:
        **ROW_TABLE_OUTPUTS,
    log:
        res("logs/tables/{table}.log"),
    benchmark:
        res("benchmarks/tables/{table}.tsv")
    wildcard_constraints:
        table=any_of([name for name in ROW_TABLES if name not in PAPER_TABLES]),
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("report")
    resources:
        **job_resources("report"),
    params:
        kind=table_kind,
        out_dir=table_dir,
        paper=lambda wildcards: options("--paper") if wildcards.table in PAPER_TABLES else "",
    shell:
        "madvae report {input:q} --kind {params.kind:q} --name {wildcards.table:q} --out-dir {params.out_dir:q} "
        "{params.paper} > {log:q} 2>&1"


# Tables 1 and 2 with report.paper: the same job, with the comparison's files
use rule tables as tables_paper with:
    output:
        **ROW_TABLE_OUTPUTS,
        **PAPER_OUTPUTS["{table}"],
    wildcard_constraints:
        table=any_of([name for name in PAPER_TABLES if name != "overpowered"]),


rule table_security:
    input:
        curve_evaluations(),
    output:
        accuracy=report(
            res("tables/security_accuracy.csv"),
            caption="../report/security.rst",
            category="Tables",
            labels={"table": "security", "file": "accuracy (CSV)"},
        ),
        agreement=report(
            res("tables/security_agreement.csv"),
            caption="../report/security.rst",
            category="Tables",
            labels={"table": "security", "file": "agreement (CSV)"},
        ),
        markdown=report(
            res("tables/security.md"),
            caption="../report/security.rst",
            category="Tables",
            labels={"table": "security", "file": "Markdown"},
        ),
        figure=report(
            res("tables/security.png"),
            caption="../report/security.rst",
            category="Tables",
            labels={"table": "security", "file": "figure"},
        ),
    log:
        res("logs/tables/security.log"),
    benchmark:
        res("benchmarks/tables/security.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("report")
    resources:
        **job_resources("report"),
    params:
        out_dir=table_dir,
    shell:
        "madvae report {input:q} --kind security --name security --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule table_overpowered:
    input:
        overpowered_evaluations(),
    output:
        **(PAPER_OUTPUTS["overpowered"] if "overpowered" in PAPER_TABLES else {}),
        csv=report(
            res("tables/overpowered.csv"),
            caption="../report/overpowered_table.rst",
            category="Tables",
            labels={"table": "overpowered", "file": "metrics (CSV)"},
        ),
        markdown=report(
            res("tables/overpowered.md"),
            caption="../report/overpowered_table.rst",
            category="Tables",
            labels={"table": "overpowered", "file": "metrics (Markdown)"},
        ),
    log:
        res("logs/tables/overpowered.log"),
    benchmark:
        res("benchmarks/tables/overpowered.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("report")
    resources:
        **job_resources("report"),
    params:
        out_dir=table_dir,
        paper=options("--paper") if "overpowered" in PAPER_TABLES else "",
    shell:
        "madvae report {input:q} --kind overpowered --name overpowered --out-dir {params.out_dir:q} {params.paper} "
        "> {log:q} 2>&1"


# `make demo`: Table 1 and what it needs (classifier, attack sets, purifiers, white-box evaluations), without
# Tables 2-3, the adaptive attacks and the figures that `snakemake --cores all` (rule all) adds
rule table1:
    input:
        [res(f"tables/{pattern.format(name='whitebox')}") for pattern in ROW_TABLE_FILES],
        PAPER_TARGETS.get("whitebox", []),
