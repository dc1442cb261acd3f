# Inputs and options of the rules in rules/report.smk.


def table_dir(wildcards, output):
    return os.path.dirname(output.markdown)


def table_evaluations(wildcards):
    return ROW_TABLES[wildcards.table][1]()


def table_kind(wildcards):
    return ROW_TABLES[wildcards.table][0]
