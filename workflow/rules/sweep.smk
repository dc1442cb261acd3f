include: "helpers/sweep.smk"


# Sweeps (config: a list for a training option in vae or a variant entry): one candidate purifier per
# combination, each scored on validation sets crafted with other attack settings than the test sets; the best
# per variant (config validation.criterion) is copied to models/vae_<variant>.pt, so every later rule and table
# sees only the kept model. A variant without a list trains straight to models/vae_<variant>.pt (rules/train.smk).


# the install rule produces models/vae_<variant>.pt too, but only for swept variants (its constraint)
ruleorder: install_vae > train


localrules:
    selection,
    install_vae,


rule train_candidate:
    input:
        unpack(vae_input),
    output:
        vae=res("models/sweep/{variant}/{combo}/vae.pt"),
        log=res("models/sweep/{variant}/{combo}/vae.train.csv"),
        curve=res("models/sweep/{variant}/{combo}/vae.steps.csv"),
    log:
        res("logs/models/sweep/{variant}/{combo}/vae.log"),
    benchmark:
        res("benchmarks/models/sweep/{variant}/{combo}/vae.tsv")
    wildcard_constraints:
        variant=any_of(SWEEPS),
        combo=any_of({combo for grid in SWEEPS.values() for combo in grid}),
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    params:
        options=vae_options,
        device=DEVICE,
    shell:
        "madvae train {input.sets:q} {params.options} --resume --device {params.device:q} --no-progress "
        "--out {output.vae:q} > {log:q} 2>&1"


rule gen_val:
    input:
        clean=clean_set("val"),
        classifier=res("models/classifier.pt"),
    output:
        res("sets/val/{vsetting}.h5"),
    log:
        res("logs/sets/val/{vsetting}.log"),
    benchmark:
        res("benchmarks/sets/val/{vsetting}.tsv")
    wildcard_constraints:
        vsetting=any_of(VAL_ATTACKS),
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("gen")
    resources:
        **job_resources("gen"),
    params:
        options=val_attack_options,
        device=DEVICE,
    shell:
        "madvae gen --input {input.clean:q} --classifier {input.classifier:q} {params.options} "
        "--device {params.device:q} --no-progress --out {output:q} > {log:q} 2>&1"


rule attack_val:
    input:
        set=res("sets/val/{vsetting}.h5"),
        classifier=res("models/classifier.pt"),
        vae=res("models/sweep/{variant}/{combo}/vae.pt"),
    output:
        res("eval/sweep/{variant}/{combo}/{vsetting}.json"),
    log:
        res("logs/eval/sweep/{variant}/{combo}/{vsetting}.log"),
    benchmark:
        res("benchmarks/eval/sweep/{variant}/{combo}/{vsetting}.tsv")
    wildcard_constraints:
        variant=any_of(SWEEPS),
        combo=any_of({combo for grid in SWEEPS.values() for combo in grid}),
        vsetting=any_of(VAL_ATTACKS),
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


# madvae reads each candidate's options from its checkpoint (named in the evaluation), so they are inputs too
rule selection:
    input:
        results=val_evaluations(),
        vaes=[path for variant in SWEEPS for path in sweep_candidates(variant)],
    output:
        csv=report(
            res("tables/selection.csv"),
            caption="../report/selection.rst",
            category="Tables",
            labels={"table": "selection", "file": "every combination (CSV)"},
        ),
        markdown=report(
            res("tables/selection.md"),
            caption="../report/selection.rst",
            category="Tables",
            labels={"table": "selection", "file": "every combination (Markdown)"},
        ),
        kept=res("tables/selection.json"),
    log:
        res("logs/tables/selection.log"),
    benchmark:
        res("benchmarks/tables/selection.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("report")
    resources:
        **job_resources("report"),
    params:
        criterion=config["validation"]["criterion"],
        out_dir=table_dir,
    shell:
        "madvae report {input.results:q} --kind selection --name selection --criterion {params.criterion:q} "
        "--out-dir {params.out_dir:q} > {log:q} 2>&1"


# a byte copy of the kept checkpoint and its training logs, the files the train rule would have written
rule install_vae:
    input:
        unpack(installed_candidates),
    output:
        vae=res("models/vae_{variant}.pt"),
        log=res("models/vae_{variant}.train.csv"),
        curve=res("models/vae_{variant}.steps.csv"),
    log:
        res("logs/models/vae_{variant}.install.log"),
    benchmark:
        res("benchmarks/models/vae_{variant}.install.tsv")
    wildcard_constraints:
        variant=any_of(SWEEPS),
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("report")
    resources:
        **job_resources("report"),
    shell:
        "madvae_python -m madvae.selection {input.selection:q} {wildcards.variant:q} {output.vae:q} > {log:q} 2>&1"
