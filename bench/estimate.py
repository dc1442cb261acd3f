"""A workflow config's compute time on the benchmarked machine, from the bench's measured rates:
`python bench/estimate.py [--config FILE] [--figures RESULTS.json ...] [--target all|table1|JOB ...] [--cores N]`.

Every job the workflow runs for the config (bench/jobs.py, checked against `snakemake -n`), as its work over the
bench rate it needs (bench/rates.py), plus one process start per job; per rule and in total, serial (one job at a
time with the bench's threads) and with Snakemake's --cores N (a simulation, see schedule()). An estimate, not a
measurement: CW counts every one of its iterations and single pixel every pixel (both stop sooner: upper bounds);
UMAP is taken as linear in the points; the figures are as fast as the machine was while the bench ran."""
from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/estimate.py` puts bench/, not the repository, on the path

from bench.jobs import Job, workflow_jobs  # noqa: E402
from bench.rates import Rates  # noqa: E402
from bench.workflow_config import effective_config  # noqa: E402

PAPER = ROOT / "config" / "paper.yaml"
RESULTS = ROOT / "bench" / "results.json"


@dataclass
class JobTime:
    job: Job
    startup: float  # seconds, single-threaded
    compute: float  # seconds at the bench's threads
    bench_threads: int
    speedup: float | None = None  # of the bench's threads over one (the bench's threads figure); None: linear

    @property
    def serial(self) -> float:
        return self.startup + self.compute

    def on(self, cores: int) -> float:
        """Seconds with min(threads, cores) threads: compute scaled from the bench's thread count as the measured
        speedup says (threads ** log(speedup) / log(bench threads)), linearly without one."""
        threads = min(self.job.threads, cores)
        if not threads:
            return 0.0
        gain = 1.0 if self.bench_threads < 2 or not self.speedup else math.log(self.speedup, self.bench_threads)
        return self.startup + self.compute * (self.bench_threads / threads) ** gain


@dataclass
class Estimate:
    times: list[JobTime]
    lines: dict  # (rule, rate) -> {"jobs", "amount", "what": Counter, "seconds", "sources": Counter}
    missing: dict  # rate -> bench section that measures it

    def seconds_by_rule(self) -> dict:
        totals = defaultdict(float)
        for t in self.times:
            totals[t.job.rule] += t.serial
        return dict(totals)

    def jobs_by_rule(self) -> Counter:
        return Counter(t.job.rule for t in self.times)

    @property
    def serial(self) -> float:
        return sum(t.serial for t in self.times)


def estimate(jobs: list[Job], rates: Rates) -> Estimate:
    missing = {w.rate: rates.section(w.rate) for job in jobs for w in job.work if not rates.has(w.rate)}
    times, lines, speedup = [], {}, rates.thread_speedup()
    for job in jobs:
        startup = compute = 0.0
        threads = 1
        for work in job.work:
            if work.rate in missing:
                continue
            rate = rates.rate(work)
            seconds = work.amount / rate.per_s
            if work.rate == "startup":
                startup += seconds
            else:
                compute += seconds
                threads = rate.threads
            line = lines.setdefault((job.rule, work.rate), {"jobs": 0, "amount": 0.0, "what": Counter(),
                                                            "seconds": 0.0, "sources": Counter()})
            line["jobs"] += 1
            line["amount"] += work.amount
            line["what"][work.what] += 1
            line["seconds"] += seconds
            line["sources"][rate.source] += 1
        times.append(JobTime(job, startup, compute, threads, speedup))
    return Estimate(times, lines, missing)


def schedule(times: list[JobTime], cores: int) -> float:
    """Wall seconds of a greedy list schedule, as Snakemake's local executor runs jobs: whenever a job ends, start
    every job whose inputs are done, in the workflow's order, while its threads fit in the free cores."""
    done, running, pending = {}, [], list(times)
    now, free = 0.0, cores
    while pending or running:
        for t in list(pending):
            need = min(t.job.threads, cores)
            if need <= free and all(done.get(name, now + 1) <= now for name in t.job.needs):
                pending.remove(t)
                running.append((now + t.on(cores), t.job.name, need))
                free -= need
        if not running:
            raise ValueError(f"jobs wait for inputs no job makes: {sorted(n for t in pending for n in t.job.needs)}")
        running.sort()
        end, name, need = running.pop(0)
        now, free, done[name] = end, free + need, end
    return now


def dry_run_counts(configfile, jobs: list[Job], targets) -> tuple[dict | None, str]:
    """(jobs per rule, '') from `snakemake -n TARGETS` on a fresh results folder, or (None, why not)."""
    outputs = {job.name: job.output for job in jobs}
    with tempfile.TemporaryDirectory(prefix="madvae-estimate-") as folder:
        results = f"{folder}/results"
        files = [f"{results}/{outputs[t]}" if outputs.get(t) else t for t in targets]
        overlay = ["--configfile", str(Path(configfile).resolve())] if configfile else []
        command = [sys.executable, "-m", "snakemake", "-n", *files, *overlay, "--config", f"results_dir={results}"]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    if done.returncode != 0 or "Job stats:" not in output:
        return None, (output.strip().splitlines() or ["no output"])[-1]
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M)}, ""


def measured_seconds(folder: Path, jobs: list[Job]) -> dict:
    """Seconds of each job that has a Snakemake benchmark TSV (its "s" column) under ``folder``
    (results/benchmarks): what a run took, to print beside the estimate."""
    found = {}
    for job in jobs:
        for path in (folder / f"{job.name}.tsv", folder / f"{job.name}.install.tsv"):  # install_vae's own name
            if path.is_file():
                rows = path.read_text().splitlines()
                found[job.name] = float(rows[-1].split("\t")[0])  # the last row: the latest run
                break
    return found


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:10.1f}"


def report(result: Estimate, counts: dict | None, cores: int, measured: dict | None = None) -> list[str]:
    """The printout: per rule its jobs (and the dry run's), per rate its work, rate and minutes; the totals.
    ``measured``: job name -> seconds a run took (measured_seconds), summed per rule beside the estimate."""
    out = [f"{'rule / rate':<26}{'jobs':>6}{'dry run':>9}{'minutes':>10}{'rate /s':>12}  "
           "work per job (images x passes)  [the rate's source]"]
    by_rule, jobs = result.seconds_by_rule(), result.jobs_by_rule()
    ran = defaultdict(list)
    for t in result.times:
        if measured and t.job.name in measured:
            ran[t.job.rule].append((measured[t.job.name], t.on(cores)))  # each job at its threads
    for rule, seconds in by_rule.items():
        dry = "-" if counts is None else str(counts.get(rule, 0))
        took = (f"{'':>12}  measured {sum(m for m, _ in ran[rule]) / 60:,.1f} min in {len(ran[rule])} jobs "
                f"(estimate for those {sum(e for _, e in ran[rule]) / 60:,.1f})" if ran[rule] else "")
        out.append(f"{rule:<26}{jobs[rule]:>6}{dry:>9}{_minutes(seconds)}{took}")
        for (line_rule, rate), line in result.lines.items():
            if line_rule != rule:
                continue
            what = "; ".join(f"{k} x {w}" for w, k in line["what"].items())
            per_s = line["amount"] / line["seconds"] if line["seconds"] else 0.0
            out.append(f"  {rate:<24}{line['jobs']:>6}{'':>9}{_minutes(line['seconds'])}{per_s:>12,.2f}  {what}  "
                       f"[{'; '.join(line['sources'])}]")
    if counts is not None:
        extra = {rule: n for rule, n in counts.items() if n != jobs.get(rule, 0)}
        out.append("dry run: same jobs per rule" if not extra and set(jobs) <= set(counts) else
                   f"dry run DIFFERS: {extra or 'rules ' + ', '.join(sorted(set(jobs) - set(counts)))}")
    wall = schedule(result.times, cores)
    dry_total = "-" if counts is None else str(sum(counts.values()))
    out.append(f"{'total':<26}{len(result.times):>6}{dry_total:>9}  serial (one job at a time, the bench's threads):"
               f" {result.serial / 60:,.1f} min = {result.serial / 3600:,.2f} h")
    speedup = result.times[0].speedup if result.times else None
    scaling = (f"{result.times[0].bench_threads} threads {speedup:.2f}x one, as the bench's threads figure"
               if speedup else "linearly: no threads figure")
    out.append(f"{'':<43}with --cores {cores} (simulated: jobs start in workflow order when their inputs are done "
               f"and their threads fit; compute scales with threads ({scaling}), startups do not): "
               f"{wall / 60:,.1f} min = {wall / 3600:,.2f} h")
    if measured:
        pairs = [pair for rule in ran.values() for pair in rule]
        out.append(f"{'':<43}measured: {len(pairs)} jobs took {sum(m for m, _ in pairs) / 60:,.1f} min summed "
                   f"(the estimate for them, each at its threads with --cores {cores}: "
                   f"{sum(e for _, e in pairs) / 60:,.1f} min)")
    if result.missing:
        sections = ",".join(sorted(set(result.missing.values())))
        out.append(f"INCOMPLETE: no figure for {', '.join(sorted(result.missing))}; measure them with "
                   f"`bench/run.py --only {sections}`")
    return out


def describe(config: dict, configfile, targets, rates: Rates) -> str:
    from bench.jobs import SPLIT_SIZES

    sizes = SPLIT_SIZES[config["dataset"]["name"]]
    limits = {s: min(n, config["dataset"]["limit"].get(s) or n) for s, n in sizes.items()}
    machines = "; ".join(f"{m['device']}, {m['threads']} threads, {m['timestamp'][:16]}"
                         f"{', load %.1f' % m['load_average'] if 'load_average' in m else ''}"
                         for m in rates.machines)
    return (f"{configfile or 'config/config.yaml'} ({config['dataset']['name']}: {limits['train']:,} train / "
            f"{limits['val']:,} val / {limits['test']:,} test), target {' '.join(targets)}; rates from {rates.origin} "
            f"({machines})")


def paper_grid_hours(figures: list[dict]) -> dict | None:
    """Hours per rule of config/paper.yaml's whole workflow at the benchmarked rates, serial; None when a needed
    figure is missing."""
    result = estimate(workflow_jobs(effective_config(PAPER)), Rates(figures))
    if result.missing:
        return None
    hours = {rule: seconds / 3600 for rule, seconds in result.seconds_by_rule().items() if seconds}
    return {"hours": hours, "total_hours": result.serial / 3600, "train_images": 55_000, "test_images": 10_000}


def estimate_line(estimate: dict | None, device: str) -> str:
    if estimate is None:
        return "Paper grid estimate: needs every section's figure (run without --only)."
    parts = ", ".join(f"{name} {hours:,.1f} h" for name, hours in estimate["hours"].items() if hours >= 0.05)
    return (f"Paper grid (config/paper.yaml, MNIST {estimate['train_images']:,} train / {estimate['test_images']:,}"
            f" test) at these rates on {device}: about {estimate['total_hours']:,.0f} device-hours, one job at a "
            f"time ({parts}; `bench/estimate.py --config config/paper.yaml` lists every rule); CW and single pixel "
            "counted at every iteration and pixel (upper bounds: both stop early).")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="a --configfile for the workflow (default: none, the embedded "
                                                     "config/config.yaml)")
    parser.add_argument("--figures", type=Path, nargs="+", default=[RESULTS],
                        help="bench results (bench/run.py --out); with several, each rate comes from the figure "
                             "measured at the batch size nearest the job's")
    parser.add_argument("--target", nargs="+", default=["all"],
                        help="Snakemake targets: all (default), table1, or jobs' names (outputs without results_dir "
                             "and extension, e.g. tables/whitebox tables/overpowered)")
    parser.add_argument("--cores", type=int, default=2, help="Snakemake's --cores for the simulated wall time")
    parser.add_argument("--no-dry-run", action="store_true", help="skip comparing with `snakemake -n`")
    parser.add_argument("--measured", type=Path, metavar="DIR",
                        help="a run's Snakemake benchmarks (results/benchmarks): its job times beside the estimate")
    args = parser.parse_args(argv)
    config = effective_config(args.config)
    rates = Rates.from_files(args.figures)
    jobs = workflow_jobs(config, args.target)
    result = estimate(jobs, rates)
    counts, why = (None, "skipped") if args.no_dry_run else dry_run_counts(args.config, jobs, args.target)
    print(describe(config, args.config, args.target, rates))
    if counts is None:
        print(f"dry run: {why}")
    measured = measured_seconds(args.measured, [t.job for t in result.times]) if args.measured else None
    print("\n".join(report(result, counts, args.cores, measured)))
    return 1 if result.missing else 0


if __name__ == "__main__":
    sys.exit(main())
