include: "helpers/gen.smk"


# Adversarial sets against the classifier: the training grid on the train split, the test attacks on the test split.


rule gen_train:
    input:
        clean=clean_set("train"),
        classifier=res("models/classifier.pt"),
    output:
        res("sets/train/{setting}.h5"),
    log:
        res("logs/sets/train/{setting}.log"),
    benchmark:
        res("benchmarks/sets/train/{setting}.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("gen")
    resources:
        **job_resources("gen"),
    params:
        options=train_attack_options,
        device=DEVICE,
    shell:
        "madvae gen --input {input.clean:q} --classifier {input.classifier:q} {params.options} "
        "--device {params.device:q} --no-progress --out {output:q} > {log:q} 2>&1"


rule gen_test:
    input:
        clean=clean_set("test"),
        classifier=res("models/classifier.pt"),
    output:
        res("sets/test/{attack}.h5"),
    log:
        res("logs/sets/test/{attack}.log"),
    benchmark:
        res("benchmarks/sets/test/{attack}.tsv")
    conda:
        "../envs/madvae.yaml"
    threads: job_threads("gen")
    resources:
        **job_resources("gen"),
    params:
        options=test_attack_options,
        device=DEVICE,
    shell:
        "madvae gen --input {input.clean:q} --classifier {input.classifier:q} {params.options} "
        "--device {params.device:q} --no-progress --out {output:q} > {log:q} 2>&1"
