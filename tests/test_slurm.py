"""The SLURM profile: a cheap consistency check (always), and the workflow run through a real single-node SLURM
cluster on this machine (only when asked: root, Debian, MADVAE_SLURM_TEST=1; `.ci/slurm` runs it).

The cluster comes from cluster/local/up.sh (installs slurmctld/slurmd/munge where missing, starts them, records
their PIDs) and goes with cluster/local/down.sh (stops exactly those PIDs) in a finally.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from test_cli_front import readme_section

ROOT = Path(__file__).resolve().parents[1]
REAL_PROFILE = ROOT / "profiles" / "slurm" / "profile.yaml"
LOCAL_PROFILE = ROOT / "cluster" / "local" / "profile" / "profile.yaml"
TINY = ROOT / ".test" / "config" / "config.yaml"
STATE = Path(os.environ.get("MADVAE_SLURM_STATE", "/tmp/madvae-slurm"))
WORKFLOW_PROFILE = ROOT / "profiles" / "default" / "profile.yaml"
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")
RUN_TIMEOUT_S = 45 * 60


def _load(path):
    return yaml.safe_load(path.read_text())


def _workflow_rules():
    """{rule name: its text} from workflow/rules/*.smk."""
    rules = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        blocks = re.split(r"^rule (\w+):\s*$", path.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2]):
            rules[name] = body
    return rules


def test_local_profile_differs_from_the_cluster_profile_only_by_status_command_and_partitions():
    real, local = _load(REAL_PROFILE), _load(LOCAL_PROFILE)
    # a real site has job accounting: the plugin's default status command (sacct); the local cluster has none
    assert "slurm-status-command" not in real and local.pop("slurm-status-command") == "squeue"
    assert local == real and real["executor"] == "slurm"
    # the local profile's squeue status mode needs MinJobAge (600 s in up.sh's slurm.conf, 300 s by default) >= 3 x
    # init seconds
    assert 3 * local["slurm-init-seconds-before-status-checks"] <= 300
    # partitions are the site's: each profile names its own file, next to it; no rule's resources in either
    assert real["slurm-partition-config"] == "partitions.yaml" and "set-resources" not in real
    assert "slurm_partition" not in real["default-resources"]
    local_parts = _load(LOCAL_PROFILE.parent / "partitions.yaml")["partitions"]
    assert local_parts == {"main": {"max_gpu": 0}}, "up.sh makes one partition, main, without GPUs"
    real_parts = _load(REAL_PROFILE.parent / "partitions.yaml")["partitions"]
    assert sorted(limits["max_gpu"] for limits in real_parts.values()) == [0, 1]


def test_workflow_profile_names_real_rules_and_gives_every_gpu_rule_a_gpu():
    rules = _workflow_rules()
    profile = _load(WORKFLOW_PROFILE)
    assert set(profile) == {"set-resources"}, "the workflow profile holds per-rule resources only"
    # Snakemake silently ignores set-resources for a rule that does not exist: catch typos and renames
    unknown = set(profile["set-resources"]) - set(rules)
    assert not unknown, f"profiles/default/profile.yaml set-resources names no rule of the workflow: {unknown}"
    # the rules that generate attacks, train or evaluate: job_resources("gen" | "train" | "attack")
    gpu_rules = {name for name, body in rules.items()
                 if set(re.findall(r'job_resources\("(\w+)"\)', body)) & {"gen", "train", "attack"}}
    assert len(gpu_rules) >= 10
    asked = {name for name, resources in profile["set-resources"].items() if resources == {"gpu": 1}}
    assert asked == gpu_rules == set(profile["set-resources"]), \
        f"no GPU for {gpu_rules - asked}; a GPU for CPU rules {asked - gpu_rules}"
    # no rule asks for GPUs itself, so the profile is the one place they are set
    assert not [name for name, body in rules.items() if re.search(r"\bgpu\s*=", body)]


def _env():
    env = dict(os.environ)
    # jobs inherit this environment (sbatch --export=ALL): the venv's python, snakemake and madvae
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SLURM_CONF"] = str(STATE / "slurm.conf")
    env["MADVAE_SLURM_STATE"] = str(STATE)
    env.pop("SLURM_JOB_ID", None)
    return env


FAKE_SLURM = """#!/bin/sh
# a stand-in for a SLURM command: records how it was called, submits nothing
printf '%s\\n' "$(basename "$0") $*" >> "$FAKE_SLURM_LOG"
echo "$(basename "$0"): error: not a cluster (test)" >&2
exit 1
"""


def test_site_and_workflow_profiles_give_a_gpu_rule_its_gpu_partition_and_a_cpu_rule_none(tmp_path):
    """What sbatch would get, without a cluster: the real profile (placeholders filled in) and the workflow profile
    that Snakemake picks up from the repository root, with stand-ins for sbatch & co. that record their arguments."""
    bin_dir, site = tmp_path / "bin", tmp_path / "slurm"
    bin_dir.mkdir()
    for command in ("sbatch", "sacct", "sacctmgr", "sshare", "sinfo", "squeue", "scontrol", "srun"):
        (bin_dir / command).write_text(FAKE_SLURM)
        (bin_dir / command).chmod(0o755)
    site.mkdir()
    (site / "profile.yaml").write_text(REAL_PROFILE.read_text())
    partitions = (REAL_PROFILE.parent / "partitions.yaml").read_text()
    (site / "partitions.yaml").write_text(partitions.replace("EDIT-ME-cpu-partition", "cpus")
                                          .replace("EDIT-ME-gpu-partition", "gpus"))
    results = tmp_path / "results"
    (results / "sets").mkdir(parents=True)
    (results / "models").mkdir()
    # gen_test's inputs exist, so it is the one job submitted for its target
    (results / "sets" / "mnist-5k_test.h5").touch()
    (results / "models" / "classifier.pt").touch()
    calls = tmp_path / "calls.log"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_LOG": str(calls)}
    env.pop("SLURM_JOB_ID", None)

    def sbatch_calls(target):
        """The sbatch lines for one target; a failed submission stops Snakemake, so one target at a time."""
        calls.write_text("")
        done = subprocess.run([sys.executable, "-m", "snakemake", "--profile", str(site), "--config",
                               f"results_dir={results}", "--", str(target)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode != 0, "nothing can be submitted here"
        assert "workflow specific profile profiles/default" in done.stderr
        lines = [line for line in calls.read_text().splitlines() if line.startswith("sbatch ")]
        assert lines, f"no sbatch call for {target}:\n{done.stderr[-3000:]}"
        return lines

    gpu = sbatch_calls(results / "sets" / "test" / "pgd.h5")
    cpu = sbatch_calls(results / "sets" / "mnist-5k_train.h5")
    assert all("--comment rule_gen_test_" in line for line in gpu)
    assert all("--comment rule_clean_set_" in line for line in cpu)
    # each retry asks for more: attempt k gets k times the config's run time and memory (resources.gen)
    assert " -p gpus " in gpu[0] and " --gpus=1 " in gpu[0]
    gen = _load(ROOT / "config" / "config.yaml")["resources"]["gen"]
    assert f" -t {gen['runtime']} --mem {gen['mem_mb']} " in gpu[0]
    assert f" --cpus-per-task={gen['cpus_per_task']} " in gpu[0]
    assert len(gpu) == 3, "retries: 2"
    assert f" -t {3 * gen['runtime']} --mem {3 * gen['mem_mb']} " in gpu[-1], "the 3rd attempt gets 3x time and memory"
    assert " -p cpus " in cpu[0] and "--gpus" not in cpu[0] and "--gres" not in cpu[0]


def _cluster_already_up():
    """True if an earlier up.sh left daemons running: then this test leaves them running too."""
    pids = STATE / "pids"
    if not pids.is_file():
        return False
    for line in pids.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and Path(f"/proc/{parts[1]}").exists():
            return True
    return False


def _run_snakemake(cmd, env, log_path):
    """Run Snakemake with its output in log_path; a hang (the sacct trap) is stopped with SIGINT, which it obeys."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            return proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            pytest.fail(f"snakemake ran over {RUN_TIMEOUT_S} s (a plugin that lost its jobs waits forever: "
                        f"see cluster/README.md, traps); log: {log_path}\n{_tail(log_path)}")


def _tail(path, lines=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _jobs(log_text):
    """{snakemake jobid: (rule, local?)} from the 'rule X:' / 'localrule X:' block Snakemake prints per job."""
    jobs, current = {}, None
    for line in log_text.splitlines():
        header = re.match(r"^(local)?rule (\w+):$", line)
        if header:
            current = (header.group(2), bool(header.group(1)))
            continue
        jobid = re.match(r"^\s+jobid: (\d+)$", line)
        if jobid and current:
            jobs[jobid.group(1)] = current
            current = None
    return jobs


@pytest.mark.slurm
@pytest.mark.skipif(os.environ.get("MADVAE_SLURM_TEST") != "1",
                    reason="starts a SLURM cluster on this machine: set MADVAE_SLURM_TEST=1 (root, Debian)")
def test_tiny_workflow_runs_through_slurm(tmp_path):
    assert TINY.is_file(), f"{TINY} missing"
    env = _env()
    keep_running = _cluster_already_up()
    up = subprocess.run(["bash", str(ROOT / "cluster/local/up.sh")], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
    try:
        assert up.returncode == 0, f"cluster/local/up.sh failed:\n{up.stdout}{up.stderr}"
        results = tmp_path / "results"
        log_path = tmp_path / "snakemake.log"
        # a copy: every SLURM job re-reads the config files when it starts, so an edit of .test/config/config.yaml
        # during the run would give the jobs another grid than the one the main process planned
        tiny = tmp_path / "tiny.yaml"
        tiny.write_text(TINY.read_text())
        args = ["--configfile", str(tiny), "--config", f"results_dir={results}"]
        snakemake = [sys.executable, "-m", "snakemake", "-s", "workflow/Snakefile"]
        started = time.time()
        # no GPUs on this cluster: the workflow profile's GPU requests would make sbatch refuse the GPU jobs
        profiles = ["--profile", str(LOCAL_PROFILE), "--workflow-profile", "none"]
        rc = _run_snakemake(snakemake + profiles + args, env, log_path)
        wall = time.time() - started
        text = log_path.read_text(errors="replace")
        print(f"\nSLURM run: {wall:.0f} s wall time, rc {rc}; log {log_path}")
        assert rc == 0, f"snakemake --profile {LOCAL_PROFILE} failed (rc {rc}):\n{_tail(log_path)}\n" \
                        f"slurmctld log:\n{_tail(STATE / 'log' / 'slurmctld.log', 10)}"
        assert "steps (100%) done" in text

        # every non-local job went through sbatch, once (more only if one was retried)
        jobs = _jobs(text)
        remote = {jobid for jobid, (_, local) in jobs.items() if not local}
        submissions = SUBMITTED.findall(text)
        print(f"SLURM job ids: {' '.join(s[1] for s in submissions)}; "
              f"local jobs: {sorted(rule for rule, local in jobs.values() if local)}")
        assert remote and {s[0] for s in submissions} == remote, \
            f"{len(remote)} jobs should have gone through SLURM, {len(submissions)} submissions found:\n" \
            f"{_tail(log_path)}"
        assert len({s[1] for s in submissions}) == len(submissions), "a SLURM job id appears twice"
        for _, slurm_id, slurm_log in submissions:
            path = Path(slurm_log)
            assert path.is_file() and path.stat().st_mtime >= started - 1, f"no SLURM log for job {slurm_id}"
            assert path.stat().st_size > 0, f"empty SLURM log {path}"

        # SLURM's own record (squeue keeps finished jobs for MinJobAge = 600 s): the last submission of each
        # Snakemake job completed
        squeue = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%T"], env=env,
                                capture_output=True, text=True, check=True).stdout
        states = dict(line.split("|", 1) for line in squeue.split())
        last = {job: slurm_id for job, slurm_id, _ in submissions}  # submissions are in order
        seen = {sid: states[sid] for sid in last.values() if sid in states}
        assert seen, f"squeue knows none of the job ids {sorted(last.values())}:\n{squeue}"
        assert all(state == "COMPLETED" for state in seen.values()), seen

        # the tables came out, and a dry run finds nothing left to do
        tables = results / "tables"
        assert list(tables.glob("*.csv")) and list(tables.glob("*.md")), f"no tables in {tables}"
        for table in tables.iterdir():
            assert table.stat().st_size > 0, f"empty table {table}"
        dry = subprocess.run(snakemake + ["-n"] + args, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
        assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, \
            f"a dry run after the SLURM run still has jobs to do:\n{dry.stdout[-3000:]}{dry.stderr[-3000:]}"
    finally:
        if not keep_running:
            down = subprocess.run(["bash", str(ROOT / "cluster/local/down.sh")], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=120)
            if down.returncode != 0:  # reported, without hiding a failure of the test itself
                print(f"cluster/local/down.sh failed:\n{down.stdout}{down.stderr}", file=sys.stderr)
                if sys.exc_info()[0] is None:
                    pytest.fail("cluster/local/down.sh failed; daemons may still run (see its output)")


def test_the_cluster_pages_name_what_exists():
    """cluster/README.md and the README's workflow section agree with the files: every path in the cluster page's
    file list exists, every --profile they run is a profile folder, and the GPU rules the cluster page names are
    the workflow profile's."""
    cluster = (ROOT / "cluster" / "README.md").read_text()
    workflow = readme_section("## The workflow")
    for path in re.findall(r"^(\S+/\S*)\s", cluster.split("```", 2)[1], re.M):
        assert (ROOT / path.split(",")[0]).exists(), path
    profiles = set(re.findall(r"--profile (\S+?)`?\s", cluster + workflow))
    assert profiles and all((ROOT / name / "profile.yaml").is_file() for name in profiles), profiles
    gpu_rules = set(_load(WORKFLOW_PROFILE)["set-resources"])
    step = cluster.split("to `gen_train`", 1)[1].split("Snakemake loads it", 1)[0]
    named = {"gen_train", *re.findall(r"`(\w+)`", step)}
    assert "every `attack_*` rule" in " ".join(cluster.split())
    assert named | {rule for rule in gpu_rules if rule.startswith("attack_")} == gpu_rules
