"""bench/run.py, in its quickest mode on two small sections, writes results.json and results.md with every field
of every figure. No timing is asserted: the figures depend on the machine."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURE_KEYS = {"name", "ours_images_per_s", "reference_images_per_s", "ratio", "numerics", "n", "batch_size",
               "device", "threads"}


@pytest.mark.slow
def test_quick_bench_writes_figures_and_summary(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--device", "cpu",
                           "--only", "fgsm,eval", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["quick"] is True and results["errors"] == [] and results["memory"] is None
    machine = results["machine"]
    assert machine["cpu_count"] >= 1 and machine["threads"] >= 1 and machine["torch_version"]
    assert machine["matmul_gflops"] > 0 and machine["timestamp"]
    assert [fig["name"] for fig in results["figures"]] == ["fgsm", "eval (vae + classifier)"]
    for fig in results["figures"]:
        assert FIGURE_KEYS <= set(fig)
        for key in ("ours_images_per_s", "reference_images_per_s", "ratio"):
            assert isinstance(fig[key], float) and fig[key] > 0 and math.isfinite(fig[key])
        assert fig["numerics"].startswith("ok")  # the same images and seed give the same outputs
        assert fig["n"] > 0 and fig["batch_size"] > 0 and fig["device"] == "cpu" and fig["threads"] >= 1
    assert results["flops"]["train_mflops_per_image"] == pytest.approx(3 * results["flops"]["forward_mflops_per_image"])
    summary = out.with_suffix(".md").read_text()
    assert "| fgsm |" in summary and "MFLOP/image" in summary
    assert "ratio" in done.stdout and "numerics ok" in done.stdout
    assert not list(tmp_path.glob(".*.tmp"))  # both files were renamed into place


@pytest.mark.slow
def test_estimate_only_sections_have_no_reference(tmp_path):
    """The rates only bench/estimate.py needs: measured on madvae's side, no reference loop, no ratio."""
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--device", "cpu",
                           "--only", "startup,clean-set,substitute-E,adaptive-bpda", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = {fig["name"]: fig for fig in json.loads(out.read_text())["figures"]}
    assert list(figures) == ["startup (per job)", "clean-set", "substitute-E-train", "adaptive-bpda (per step)"]
    assert figures["substitute-E-train"]["ratio"] > 0  # a plain Adam loop is its reference
    for name in ("startup (per job)", "clean-set", "adaptive-bpda (per step)"):
        assert figures[name]["ours_images_per_s"] > 0 and figures[name]["reference_images_per_s"] is None
        assert figures[name]["ratio"] is None
    assert figures["adaptive-bpda (per step)"]["setting"] == {"nb_iter": 2, "restarts": 1}
    assert "| startup (per job) |" in out.with_suffix(".md").read_text() and "(no reference)" in done.stdout
