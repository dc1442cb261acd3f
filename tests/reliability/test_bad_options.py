"""Bad result JSONs given to `madvae report` and option values the commands refuse: one line `madvae: error: ...`,
exit code 2 (usage) or 65 (bad input), nothing written (the harness and its check are in tests/reliability/bad_input.py)."""
from __future__ import annotations

import json

import pytest

from tests.reliability.bad_input import (attack_cmd, check_refused, classifier_cmd, embed_cmd, gen_fgsm, registry,
                                         report_cmd, train_identity)

CASES, case = registry()


# result JSON (report) ------------------------------------------------------------------------------------------

@case("report-invalid-json")
def _(env):
    bad = env.inputs / "broken.json"
    bad.write_text(env.result().read_text()[:-40])
    return report_cmd(env, bad), [str(bad), "not a readable JSON"]


@case("report-json-of-another-encoding-type")
def _(env):
    bad = env.result("other.json")
    data = json.loads(bad.read_text())
    data["encoding-type"] = "madvae.set"
    bad.write_text(json.dumps(data))
    return report_cmd(env, bad), [str(bad), "not a madvae result", "madvae.set"]


@case("report-result-missing-a-metric")
def _(env):
    bad = env.result("missing.json")
    data = json.loads(bad.read_text())
    del data["metrics"]["no_defense"]["agreement"]
    bad.write_text(json.dumps(data))
    return report_cmd(env, bad), [str(bad), "metrics.no_defense.agreement"]


# option values ------------------------------------------------------------------------------------------------

@case("gen-limit-0", usage=True)
def _(env):
    return (["gen", "--attack", "none", "--dataset", "mnist-5k", "--limit", "0", "--out", env.out / "clean.h5"],
            ["--limit", "greater than or equal to 1"])


@case("train-epochs-0", usage=True)
def _(env):
    return train_identity(env, env.set("clean.h5"), extra=["--epochs", "0"]), ["--epochs", "greater than or equal to 1"]


@case("classifier-batch-size-0", usage=True)
def _(env):
    return classifier_cmd(env, env.set("clean.h5"), extra=["--batch-size", "0"]), ["--batch-size", "greater than or equal to 1"]


@case("attack-samples-minus-1", usage=True)
def _(env):
    return attack_cmd(env, env.set("clean.h5"), extra=["--samples", "-1"]), ["--samples", "greater than or equal to 0"]


@case("gen-unknown-attack", usage=True)
def _(env):
    argv = gen_fgsm(env)
    argv[argv.index("fgsm")] = "deepfool"
    return argv, ["--attack", "'deepfool' is not one of"]


@case("embed-n-0", usage=True)
def _(env):
    return embed_cmd(env, env.set("clean.h5"), extra=["--n", "0"]), ["--n", "greater than or equal to 1"]


@case("gen-param-eps-5", code=2)  # a usage error madvae finds (madvae.errors.UsageError)
def _(env):
    return gen_fgsm(env, extra=["--param", "eps=5"]), ["eps=5", "out of range"]


@case("gen-param-nb_iter-abc", code=2)  # a usage error madvae finds (madvae.errors.UsageError)
def _(env):
    argv = gen_fgsm(env, extra=["--param", "nb_iter=abc"])
    argv[argv.index("fgsm")] = "pgd"
    return argv, ["nb_iter=abc", "not a whole number"]


@case("attack-param-on-stored-mode", code=2)  # a usage error madvae finds (madvae.errors.UsageError)
def _(env):
    return attack_cmd(env, env.set("clean.h5"), extra=["--param", "eps=0.3"]), ["--param", "--mode stored"]


@case("attack-overpowered-param-steps-abc", code=2)  # a usage error madvae finds (madvae.errors.UsageError)
def _(env):
    return (attack_cmd(env, env.set("clean.h5"), extra=["--mode", "overpowered", "--vae", env.vae(),
                                                         "--param", "steps=abc"]), ["steps=abc", "not a whole number"])


@pytest.mark.parametrize("name", list(CASES))
def test_bad_option_or_result(name, env, monkeypatch, capsys):
    check_refused(name, CASES[name], env, monkeypatch, capsys)
