"""Remove each protection in turn and show that a reliability test fails (issue 6: "every point is a test that
fails when the protection is removed").

    .venv/bin/python tests/reliability/mutations.py [--control] [NAME ...]

Each mutation edits one line of a throw-away copy of the package (never the working tree), runs the tests that
guard it against that copy, and must see them fail. Prints one line per mutation; exits 1 if a mutation survived
or a run went wrong. --control runs the same tests on an unmodified copy, which must pass (the harness is sound).
Not part of the pytest run: about 2.5 minutes on 2 cores.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BAD = "tests/reliability/test_bad_input.py::test_bad_input"
WRONG = "tests/reliability/test_wrong_types.py::"
FULL = "tests/reliability/test_disk_full.py::test_a_really_full_disk_says_no_space_left"

# name -> (file, the protecting code, what it becomes without the protection, tests that must then fail)
MUTATIONS = {
    "temporary, then rename": ("madvae/util.py",
                               "    tmp = temp_path_for(path)\n", "    tmp = path\n",
                               ["tests/reliability/test_sigkill.py::test_nothing_under_the_final_name_until_the_last_byte"]),
    "stale temporaries removed": ("madvae/util.py", "    remove_stale_temporaries(path)\n", "",
                                  ["tests/reliability/test_sigkill.py::test_stale_temporary_of_a_live_writer_is_kept"]),
    "complete flag checked": ("madvae/store.py", 'if _plain(attrs.get("complete", False)) in (False, None):', "if False:",
                              [f"{BAD}[classifier-complete-flag-missing]", f"{BAD}[embed-complete-flag-false]"]),
    "values checked on read": ("madvae/store.py", "elif not (np.isfinite(values).all() and", "elif False and (",
                               [f"{BAD}[inspect-nan-in-x_clean]", f"{BAD}[gen-inf-in-x_clean]"]),
    "labels checked on read": ("madvae/store.py", "                if bad.any():", "                if False:",
                               [f"{BAD}[attack-label-12]"]),
    "stored chunks counted": ("madvae/store.py", "            self._check_storage(name, ds)\n", "",
                              [f"{BAD}[train-consistent-1e9-sample-set-without-data]"]),
    "weights_only load": ("madvae/checkpoint.py", "weights_only=True)", "weights_only=False)",
                          [f"{BAD}[attack-pickle-that-runs-code]", f"{BAD}[inspect-pickle-that-runs-code]"]),
    "SIGTERM handled": ("madvae/resume.py", "            self._previous = signal.signal(signal.SIGTERM, self._handle)",
                        "            pass",
                        ["tests/test_train.py::test_sigterm_to_the_command_exits_requeueable_and_resume_finishes"]),
    "no teardown after a failed write": ("madvae/cli.py", "        _exit_now(code)\n", "",
                                         ["tests/reliability/test_disk_full.py"]),
    "lock error explained": ("madvae/store.py", 'if exc.errno in (errno.EAGAIN, errno.ENOLCK) or "unable to lock',
                             'if False and "unable to lock',
                             ["tests/reliability/test_concurrency.py::"
                              "test_a_set_held_open_for_writing_is_refused_unless_locking_is_off"]),
    "hashes compared by verify": ("madvae/verify.py", '"ok" if current == ref.sha256 else "mismatch"', '"ok"',
                                  ["tests/test_verify.py::test_a_replaced_classifier_is_a_mismatch"]),
    "FGSM clipped to the image range": ("madvae/attacks/whitebox.py",
                                        "GradientSignAttack(target, eps=eps, clip_min=0.0, clip_max=1.0)",
                                        "GradientSignAttack(target, eps=eps, clip_min=-1.0, clip_max=2.0)",
                                        ["tests/reliability/test_attack_properties.py::test_fgsm_stays_within_eps"]),
    "links refused": ("madvae/store.py", "            self._check_link(name)\n", "",
                      ["tests/reliability/test_hdf5_layout.py::test_data_outside_the_file_or_the_format_is_refused"
                       "[soft link-a soft link]"]),
    "storage layout checked": ("madvae/store.py", "            self._check_layout(name, ds)\n", "",
                               ["tests/reliability/test_hdf5_layout.py::"
                                "test_data_outside_the_file_or_the_format_is_refused[external storage-external storage]",
                                "tests/reliability/test_hdf5_layout.py::"
                                "test_data_outside_the_file_or_the_format_is_refused[one huge chunk-chunks of shape]"]),
    "checkpoint archive bounded": ("madvae/checkpoint.py", "    _check_archive(path)\n", "",
                                   ["tests/reliability/test_checkpoint_bombs.py"]),
    "NaN weights refused": ("madvae/checkpoint.py", "        if broken:  # a NaN model", "        if False:  # a NaN model",
                            ["tests/reliability/test_non_finite.py::test_nan_weights_are_refused"]),
    "finite training rates": ("madvae/train.py", "    if bad:  # NaN slips through", "    if False:  # NaN slips through",
                              ["tests/reliability/test_non_finite.py::"
                               "test_train_refuses_non_finite_rates_and_weights[--lr-nan]"]),
    "finite config numbers": ("workflow/rules/common.smk", "    bad = non_finite(config)\n", "    bad = []\n",
                              ["tests/reliability/test_non_finite.py::test_config_with_a_non_finite_number_is_refused"]),
    "transfer recorded": ("madvae/evaluate/stored.py",
                          '        result["transfer"] = bool(reader.has_adv and source != result["classifier_sha256"])',
                          '        result["transfer"] = False',
                          ["tests/test_evaluate.py::"
                           "test_a_set_crafted_on_another_classifier_is_recorded_and_shown_as_transfer"]),
    "Markdown cells escaped": ("madvae/table_files.py", "    text = \" \".join(str(value).split())", "    return str(value)",
                               ["tests/test_report.py::test_text_from_result_files_cannot_forge_markdown_rows"]),
    "names stay file names": ("madvae/util.py", "        if not NAME_PATTERN.fullmatch(name):", "        if False:",
                              ["tests/test_embed.py::test_figure_names_from_vae_names_stay_inside_the_output_folder"]),
    "special files refused": ("madvae/util.py", "    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):",
                              "    if False:",
                              ["tests/reliability/test_special_files.py::"
                               "test_special_files_are_refused_without_blocking[inspect-/dev/zero]"]),
    "outputs never overwrite inputs": ("madvae/util.py",
                                       "            if os.path.realpath(out) == os.path.realpath(path) or "
                                       "identity(out) == identity(path):", "            if False:",
                                       ["tests/reliability/test_output_over_input.py::"
                                        "test_an_output_that_is_an_input_is_refused[gen over its input set]"]),
    "config paths quoted": ("workflow/rules/data.smk", '        "--out {output:q} > {log:q} 2>&1"',
                            '        "--out {output} > {log} 2>&1"',
                            ["tests/test_workflow.py::test_hostile_results_dir_is_refused_and_odd_ones_are_quoted"]),
    "config paths constrained": ("workflow/schemas/config.schema.yaml",
                                 '    pattern: "^[A-Za-z0-9._+/][A-Za-z0-9._+/ -]*$"\n', "",
                                 ["tests/test_workflow.py::test_hostile_results_dir_is_refused_and_odd_ones_are_quoted"]),
    "set attributes validated": ("madvae/store.py",
                                 '        validate(decoded, SET_ATTRIBUTES, self.path, noun="attribute")\n', "",
                                 [f"{WRONG}test_wrong_typed_set_attribute_is_one_line[complete-as-string-false]",
                                  f"{WRONG}test_wrong_typed_set_attribute_is_one_line[seed-as-string]"]),
    "checkpoint fields validated": ("madvae/checkpoint.py", "    validate(payload, CHECKPOINT, path)\n    ckpt", "    ckpt",
                                    [f"{WRONG}test_wrong_typed_checkpoint_field_is_one_line[meta-n-train-as-string]"]),
    "result fields validated": ("madvae/results.py", "    validate(result, RESULT, path)\n    found", "    found",
                                [f"{WRONG}test_wrong_typed_result_field_is_one_line[accuracy-as-string-report]"]),
    "JSON nesting bounded": ("madvae/schemas.py", "    check_depth(value, path, what)\n", "",
                             [f"{WRONG}test_wrong_typed_set_attribute_is_one_line[params-nested-200]"]),
    "NaN refused in JSON": ("madvae/schemas.py", "json.loads(text, parse_constant=refuse_constant)", "json.loads(text)",
                            [f"{WRONG}test_result_json_that_python_would_misread_is_one_line"]),
    "integers are not floats": ("madvae/schemas.py",
                                '    "integer": lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)})',
                                "    })",
                                [f"{WRONG}test_wrong_typed_set_attribute_is_one_line[seed-as-float]"]),
    "schemas match the docs": ("madvae/schemas.py", '"outcomes": OUTCOMES, "transfer": BOOLEAN,', '"outcomes": OUTCOMES,',
                               ["tests/test_schemas.py::test_every_documented_field_is_declared_with_its_type"]),
    "temporaries judged by their lock": ("madvae/util.py",
                                         "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while", "pass  #",
                                         ["tests/reliability/test_sigkill.py::"
                                          "test_a_live_writer_whose_pid_is_not_visible_keeps_its_temporary"]),
    "set datasets held open": ("madvae/store.py", "        self._datasets[name] = ds\n",
                               "        self._datasets = self._file  # each use a new Dataset object, as before\n",
                               [f"{FULL}[adversarial set]"]),
    "errno quoted by HDF5 read": ("madvae/util.py", "    found = _QUOTED_ERRNO.search(str(exc))", "    found = None",
                                  [f"{FULL}[adversarial set]"]),
}


def run(name: str, scratch: Path, control: bool = False) -> tuple[int, float, str]:
    """Run the guarding tests on a copy with the protection removed (or kept, ``control``): pytest's exit code."""
    file, protection, removed, tests = MUTATIONS[name]
    copy = scratch / name.replace(" ", "_")
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", ".snakemake", "results", "__pycache__"))
    source = copy / file
    text = source.read_text()
    if text.count(protection) != 1:
        return -1, 0.0, f"the protected code is not found once in {file}: update this script"
    if not control:
        source.write_text(text.replace(protection, removed))
    env = {**os.environ, "PYTHONPATH": str(copy)}  # the copy's madvae, in this process's tests and their children
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                          cwd=copy, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    last = (done.stdout.strip().splitlines() or done.stderr.strip().splitlines() or ["(no output)"])[-1]
    return done.returncode, elapsed, last


# pytest's exit code -> verdict, for a mutation run (False) and a control run (True)
VERDICTS = {False: {1: "caught  ", 0: "SURVIVED"}, True: {0: "passes  ", 1: "FAILS   "}}


def main(names: list[str]) -> int:
    control = "--control" in names
    names = [name for name in names if name != "--control"]
    unknown = [name for name in names if name not in MUTATIONS]
    if unknown:
        print(f"unknown mutation(s): {', '.join(unknown)}; known: {', '.join(MUTATIONS)}", file=sys.stderr)
        return 2
    unexpected = 0
    with tempfile.TemporaryDirectory(prefix="madvae-mutations-") as scratch:
        for name in names or MUTATIONS:
            code, elapsed, last = run(name, Path(scratch), control)
            verdict = VERDICTS[control].get(code, "ERROR   ")  # anything else: the harness, not the protection
            unexpected += verdict != VERDICTS[control][0 if control else 1]
            print(f"{verdict} {name:34s} {elapsed:6.1f} s  {last}", flush=True)
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
