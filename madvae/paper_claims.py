"""The paper's claims in words, checked on our results: holds, does not hold, or cannot check.

Each claim in madvae/reference/paper.json names its check (a key of CHECKS) and that check's parameters. A check
is two functions, the cells it needs and its verdict on them, and whether it holds row by row. A claim whose
cells are not all in our results cannot be checked, unless it is a row-by-row claim ("on every attack ...") that
already fails on a row we have: the rows we lack cannot mend that.
"""
from __future__ import annotations

HOLDS, FAILS, UNKNOWN = "holds", "does not hold", "cannot check"
TIE = 1e-9  # two cells this close are one value (a tie for "the highest")


def _rows(claim, spec):
    return claim.get("rows") or [row["key"] for row in spec["rows"]]


def _fmt(value) -> str:
    return f"{value:.4f}"


# each check: (needs(claim, spec) -> [(row, column)], verdict(claim, cells, label) -> (held, detail)), where
# cells maps (row, column) to our value (a fraction) and label(row or column key) gives the paper's name for it

def _needs_fooled(claim, spec):
    return [(row, "No Defense") for row in _rows(claim, spec)]


def _fooled(claim, cells, label):
    below, spared = claim["fooled_below"], claim["spared"]
    wrong = [f"{label(row)} {_fmt(v)}" for (row, _), v in cells.items() if (v < below) == (row == spared)]
    if wrong:
        return False, f"not as claimed (fooled: No Defense below {below}): {', '.join(wrong)}"
    fooled = [v for (row, _), v in cells.items() if row != spared]
    parts = [f"No Defense at most {_fmt(max(fooled))} on the fooled attacks"] if fooled else []
    if (spared, "No Defense") in cells:
        parts.append(f"{label(spared)} {_fmt(cells[(spared, 'No Defense')])}")
    return True, ", ".join(parts)


def _needs_above(claim, spec):
    return [(row, column) for row in _rows(claim, spec) for column in claim["higher"] + claim["lower"]]


def _above(claim, cells, label):
    """Every column of `higher` above every column of `lower`, row by row."""
    margins = [(cells[(row, h)] - cells[(row, lo)], row, h, lo) for row in dict.fromkeys(r for r, _ in cells)
               for h in claim["higher"] for lo in claim["lower"]]
    wrong = [f"{label(row)}: {label(h)} {_fmt(cells[(row, h)])} not above {label(lo)} {_fmt(cells[(row, lo)])}"
             for margin, row, h, lo in margins if margin <= 0]
    if wrong:
        return False, "; ".join(wrong)
    margin, row, h, lo = min(margins)
    return True, f"smallest margin {margin:+.4f} ({label(row)}: {label(h)} over {label(lo)})"


def _needs_best(claim, spec):
    return [(row, column) for row in _rows(claim, spec) for column in claim["columns"]]


def _winners(cells, row, columns) -> list[str]:
    top = max(cells[(row, column)] for column in columns)
    return [column for column in columns if cells[(row, column)] >= top - TIE]


def _best_among(claim, cells, label):
    rows = dict.fromkeys(r for r, _ in cells)
    best = {row: _winners(cells, row, claim["columns"]) for row in rows}
    wrong = [f"{label(row)}: highest {', '.join(map(label, w))}" for row, w in best.items()
             if not set(w) & set(claim["best"])]
    if wrong:
        return False, "; ".join(wrong)
    return True, "highest: " + ", ".join(f"{label(row)} {'/'.join(map(label, w))}" for row, w in best.items())


def _best_most_often(claim, cells, label):
    rows = list(dict.fromkeys(r for r, _ in cells))
    won = [row for row in rows if claim["variant"] in _winners(cells, row, claim["columns"])]
    detail = (f"{label(claim['variant'])} highest (ties count) on {len(won)} of {len(rows)}"
              + (f": {', '.join(map(label, won))}" if won else ""))
    return 2 * len(won) > len(rows), detail


def _needs_each(claim, spec):
    return [(row, column) for row in _rows(claim, spec) for column in claim["columns"]]


def _all_below(claim, cells, label):
    wrong = [f"{label(row)} {label(col)} {_fmt(v)}" for (row, col), v in cells.items() if v >= claim["below"]]
    if wrong:
        return False, f"not below {claim['below']}: {', '.join(wrong)}"
    (row, col), v = max(cells.items(), key=lambda item: item[1])
    return True, f"highest {_fmt(v)} ({label(row)} {label(col)})"


def _all_at_least(claim, cells, label):
    wrong = [f"{label(row)} {label(col)} {_fmt(v)}" for (row, col), v in cells.items() if v < claim["at_least"]]
    if wrong:
        return False, f"below {claim['at_least']}: {', '.join(wrong)}"
    (row, col), v = min(cells.items(), key=lambda item: item[1])
    return True, f"lowest {_fmt(v)} ({label(row)} {label(col)})"


def _within(claim, cells, label):
    (row, a), (_, b) = list(cells)
    gap = abs(cells[(row, a)] - cells[(row, b)])
    return gap < claim["within"], (f"{label(row)}: {label(a)} {_fmt(cells[(row, a)])}, {label(b)} "
                                   f"{_fmt(cells[(row, b)])}, gap {_fmt(gap)}")


CHECKS = {  # name: (needs, verdict, row by row)
    "fooled-except": (_needs_fooled, _fooled, True),
    "above": (_needs_above, _above, True),
    "best-among": (_needs_best, _best_among, True),
    "best-most-often": (_needs_best, _best_most_often, False),
    "all-below": (_needs_each, _all_below, True),
    "all-at-least": (_needs_each, _all_at_least, True),
    "within": (lambda claim, spec: [(claim["row"], column) for column in claim["columns"]], _within, False),
}


def reading(claim) -> str:
    """The claim's reading with its parameters filled in."""
    return claim["reading"].format(**claim)


def check_claims(claims, spec, value) -> list[dict]:
    """Each claim of one table checked on ``value(row, column)`` (our fraction, or None where we have no cell)."""
    names = {item["key"]: item["printed"] for item in spec["rows"] + spec["columns"]}

    def label(key):
        return names.get(key, key)

    checked = []
    for claim in claims:
        needs, verdict, by_row = CHECKS[claim["check"]]
        cells = {pair: value(*pair) for pair in needs(claim, spec)}
        missing = [f"{label(row)} × {label(column)}" for (row, column), v in cells.items() if v is None]
        if not missing:
            held, detail = verdict(claim, cells, label)
            status = HOLDS if held else FAILS
        else:
            status, detail = UNKNOWN, "missing from our results: " + ", ".join(missing)
            incomplete = {row for (row, _), v in cells.items() if v is None}
            complete = {pair: v for pair, v in cells.items() if pair[0] not in incomplete}
            if by_row and complete:
                held, found = verdict(claim, complete, label)
                if not held:
                    status, detail = FAILS, f"{found}; {detail}"
        checked.append({"id": claim["id"], "lines": claim["lines"], "words": claim["words"],
                        "reading": reading(claim), "status": status, "detail": detail})
    return checked
