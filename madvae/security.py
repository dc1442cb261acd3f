"""The security-evaluation table and figure (`madvae report --kind security`): accuracy through each defense against
eps, per adaptive attack, from `curve` results (madvae.evaluate.curve). Rows: attack and defense; columns: eps;
every cell with its 95% Wilson interval. The figure: one panel per attack, one line per defense, the intervals
as error bars."""
from __future__ import annotations

from pathlib import Path

from madvae.attacks import ADAPTIVE_ATTACKS
from madvae.errors import MadvaeError
from madvae.intervals import interval
from madvae.report import METRICS, ResultTable, _defense_columns, _load_all, expand_paths, write_tables
from madvae.seeds import over_seeds
from madvae.table_notes import preset_name
from madvae.util import atomic_output

TITLE = "Security-evaluation curves: accuracy against the L-inf budget eps"


def _pipeline(result: dict) -> dict:
    return next(iter(result["metrics"].values()))  # defended, or no_defense without a VAE


def build_security_table(result_paths) -> ResultTable:
    results, _ = _load_all(result_paths, "curve")
    grids = {tuple(_pipeline(r)["eps"]) for r in results.values()}
    if len(grids) > 1:
        raise MadvaeError(f"curves over different eps grids cannot share one table ({len(grids)} grids)",
                          hint="run every curve with the same --eps-grid")
    grid = list(next(iter(grids)))
    first = next(iter(results.values()))
    table = ResultTable("security", first["dataset"], first["split"], first["n"], [f"eps {e:g}" for e in grid],
                        row_header="Attack, defense", heading=TITLE,
                        metrics={metric: caption for metric, caption in METRICS.items()},
                        presets=sorted({preset_name(r) for r in results.values()}))
    order = {name: k for k, name in enumerate(["none", *_defense_columns(r["defense"]["name"]
                                                                         for r in results.values())])}
    seen = set()
    for path, result in sorted(results.items(), key=lambda item: (list(ADAPTIVE_ATTACKS).index(item[1]["attack"])
                                                                   if item[1]["attack"] in ADAPTIVE_ATTACKS else 99,
                                                                   order.get(item[1]["defense"]["name"], 99))):
        key = (result["attack"], result["defense"]["name"])
        if key in seen:
            raise MadvaeError(f"two curves of {key[0]} against {key[1]}", path, "give one file per attack and defense")
        seen.add(key)
        label = ADAPTIVE_ATTACKS[result["attack"]].label if result["attack"] in ADAPTIVE_ATTACKS else result["attack"]
        defense = "No Defense" if key[1] == "none" else key[1]
        points = _pipeline(result)
        table.rows.append({"attack": f"{label}{' (quick)' if result.get('quick') else ''}, {defense}",
                           "key": f"{key[0]}/{key[1]}", "n": [result["n"]] * len(grid),
                           "attack_name": key[0], "defense": defense, "preset": preset_name(result),
                           **{metric: list(points[metric]) for metric in METRICS}})
    table.notes.append("Each curve: the same first n test images at every eps (eps 0: the clean images through the "
                       "defense); quick marks an attack run at its CPU-sized settings, which overstate robustness.")
    return table


def security_figure(table: ResultTable, png_path, *, dpi: int = 150) -> Path:
    """Accuracy against eps, one panel per attack, one line per defense, 95% Wilson intervals as error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    eps = [float(column.split()[1]) for column in table.columns]
    attacks = list(dict.fromkeys(row["attack_name"] for row in table.rows))
    colours = {defense: f"C{k}" for k, defense in enumerate(dict.fromkeys(row["defense"] for row in table.rows))}
    fig = Figure(figsize=(4.2 * len(attacks), 3.6), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(attacks), squeeze=False)[0]
    for ax, attack in zip(axes, attacks):
        for row in (r for r in table.rows if r["attack_name"] == attack):
            if "sd" in row:  # over seeds
                below = above = [sd or 0.0 for sd in row["sd"]["accuracy"]]
            else:
                bounds = [interval(v, n) for v, n in zip(row["accuracy"], row["n"])]
                below = [v - lo for v, (lo, _) in zip(row["accuracy"], bounds)]
                above = [hi - v for v, (_, hi) in zip(row["accuracy"], bounds)]
            ax.errorbar(eps, row["accuracy"], yerr=[below, above], marker="o", markersize=3, capsize=2,
                        label=row["defense"], color=colours[row["defense"]])  # one colour per defense
        ax.set_title(next(r["attack"].rsplit(", ", 1)[0] for r in table.rows if r["attack_name"] == attack),
                     fontsize=10)
        ax.set_xlabel("eps (L-inf)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("accuracy")
    over = f"; mean ± sd over seeds {', '.join(table.seeds)}" if table.seeds else ""
    fig.suptitle(f"{table.dataset} {table.split}, n = {table.n}{over}", fontsize=10)
    fig.tight_layout()
    with atomic_output(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(png_path)


def write_security(result_paths, out_dir, name: str = "security") -> dict:
    """{name}_accuracy.csv, {name}_agreement.csv, {name}.md and {name}.png in out_dir; curves of several seeds:
    their means, the standard deviation as error bars (madvae.seeds)."""
    table = over_seeds(build_security_table, expand_paths(result_paths))
    written = write_tables(result_paths, out_dir, name=name, kind="security", table=table)
    written["files"]["figure"] = security_figure(table, Path(out_dir) / f"{name}.png")
    return written
