"""The paper's claims in words, checked on our results: holds, does not hold, or cannot check.

Each claim in madvae/reference/paper.json names its check (a key of CHECKS) and that check's parameters. A check
is two functions, the cells it needs and its verdict on them, and whether it holds row by row. A claim whose
cells are not all in our results cannot be checked, unless it is a row-by-row claim ("on every attack ...") that
already fails on a row we have: the rows we lack cannot mend that.
"""
from __future__ import annotations

from madvae.intervals import separated

HOLDS, FAILS, UNKNOWN = "holds", "does not hold", "cannot check"
NOT_SHOWN = "not shown"  # our numbers lean the claim's way, but inside the 95% intervals
STATUSES = (HOLDS, NOT_SHOWN, FAILS, UNKNOWN)
TIE = 1e-9  # two cells this close are one value (a tie for "the highest") when their counts are unknown


def _rows(claim, spec):
    return claim.get("rows") or [row["key"] for row in spec["rows"]]


def _fmt(value) -> str:
    return f"{value:.4f}"


# each check: (needs(claim, spec) -> [(row, column)], verdict(claim, cells, label, counts) -> (held, detail)),
# held True, False, or None where the claim leans right but only inside the intervals (NOT_SHOWN);
# where cells maps (row, column) to our value (a fraction), counts maps it to its n (None: unknown) and
# label(row or column key) gives the paper's name for it. A comparison is a win only beyond the 95% Wilson
# intervals of both cells (madvae.intervals.separated); a smaller difference is a tie.


def _beyond(cells, counts, high, low) -> bool:
    """Cell ``high`` above cell ``low`` by more than their intervals."""
    return cells[high] > cells[low] and separated(cells[high], counts.get(high), cells[low], counts.get(low))

def _needs_fooled(claim, spec):
    return [(row, "No Defense") for row in _rows(claim, spec)]


def _fooled(claim, cells, label, counts):
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


def _above(claim, cells, label, counts):
    """Every column of `higher` above every column of `lower` beyond the intervals, row by row."""
    margins = [(cells[(row, h)] - cells[(row, lo)], row, h, lo) for row in dict.fromkeys(r for r, _ in cells)
               for h in claim["higher"] for lo in claim["lower"]]
    wrong = [f"{label(row)}: {label(h)} {_fmt(cells[(row, h)])} not above {label(lo)} {_fmt(cells[(row, lo)])}"
             for margin, row, h, lo in margins if margin <= 0]
    if wrong:
        return False, "; ".join(wrong)
    inside = [f"{label(row)}: {label(h)} {_fmt(cells[(row, h)])} over {label(lo)} {_fmt(cells[(row, lo)])}"
              for margin, row, h, lo in margins if not _beyond(cells, counts, (row, h), (row, lo))]
    if inside:
        return None, "inside the 95% intervals: " + "; ".join(inside)
    margin, row, h, lo = min(margins)
    return True, f"smallest margin {margin:+.4f} ({label(row)}: {label(h)} over {label(lo)})"


def _needs_best(claim, spec):
    return [(row, column) for row in _rows(claim, spec) for column in claim["columns"]]


def _winners(cells, counts, row, columns) -> list[str]:
    """The highest column first, then every column not below it beyond the intervals (a tie)."""
    top = max(columns, key=lambda column: cells[(row, column)])
    return [top] + [column for column in columns if column != top and (
        cells[(row, column)] >= cells[(row, top)] - TIE or not _beyond(cells, counts, (row, top), (row, column)))]


def _best_among(claim, cells, label, counts):
    """On every row the highest column is one of `best`, and no other column ties it within the intervals."""
    rows = dict.fromkeys(r for r, _ in cells)
    best = {row: _winners(cells, counts, row, claim["columns"]) for row in rows}
    wrong = [f"{label(row)}: highest {', '.join(map(label, w))}" for row, w in best.items()
             if not set(w) & set(claim["best"])]
    if wrong:
        return False, "; ".join(wrong)
    detail = "highest (ties within the intervals joined by /): " + ", ".join(
        f"{label(row)} {'/'.join(map(label, w))}" for row, w in best.items())
    return (True if all(set(w) <= set(claim["best"]) for w in best.values()) else None), detail


def _best_most_often(claim, cells, label, counts):
    """The variant highest, alone beyond the intervals, on more than half the rows; counted with ties too."""
    rows = list(dict.fromkeys(r for r, _ in cells))
    winners = {row: _winners(cells, counts, row, claim["columns"]) for row in rows}
    alone = [row for row in rows if winners[row] == [claim["variant"]]]
    tied = [row for row in rows if claim["variant"] in winners[row]]
    detail = (f"{label(claim['variant'])} highest on {len(tied)} of {len(rows)} counting ties within the intervals"
              + (f" ({', '.join(map(label, tied))})" if tied else "") + f", alone on {len(alone)}")
    return (True if 2 * len(alone) > len(rows) else None if 2 * len(tied) > len(rows) else False), detail


def _needs_each(claim, spec):
    return [(row, column) for row in _rows(claim, spec) for column in claim["columns"]]


def _all_below(claim, cells, label, counts):
    wrong = [f"{label(row)} {label(col)} {_fmt(v)}" for (row, col), v in cells.items() if v >= claim["below"]]
    if wrong:
        return False, f"not below {claim['below']}: {', '.join(wrong)}"
    (row, col), v = max(cells.items(), key=lambda item: item[1])
    return True, f"highest {_fmt(v)} ({label(row)} {label(col)})"


def _all_at_least(claim, cells, label, counts):
    wrong = [f"{label(row)} {label(col)} {_fmt(v)}" for (row, col), v in cells.items() if v < claim["at_least"]]
    if wrong:
        return False, f"below {claim['at_least']}: {', '.join(wrong)}"
    (row, col), v = min(cells.items(), key=lambda item: item[1])
    return True, f"lowest {_fmt(v)} ({label(row)} {label(col)})"


def _within(claim, cells, label, counts):
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


def check_claims(claims, spec, value, count=None) -> list[dict]:
    """Each claim of one table checked on ``value(row, column)`` (our fraction, or None where we have no cell);
    ``count(row, column)``: the cell's n, for the intervals (None: compare exactly)."""
    names = {item["key"]: item["printed"] for item in spec["rows"] + spec["columns"]}

    def label(key):
        return names.get(key, key)

    checked = []
    for claim in claims:
        needs, verdict, by_row = CHECKS[claim["check"]]
        cells = {pair: value(*pair) for pair in needs(claim, spec)}
        counts = {pair: count(*pair) if count else None for pair in cells}
        missing = [f"{label(row)} × {label(column)}" for (row, column), v in cells.items() if v is None]
        if not missing:
            held, detail = verdict(claim, cells, label, counts)
            status = {True: HOLDS, None: NOT_SHOWN, False: FAILS}[held]
        else:
            status, detail = UNKNOWN, "missing from our results: " + ", ".join(missing)
            incomplete = {row for (row, _), v in cells.items() if v is None}
            complete = {pair: v for pair, v in cells.items() if pair[0] not in incomplete}
            if by_row and complete:
                held, found = verdict(claim, complete, label, counts)
                if held is False:
                    status, detail = FAILS, f"{found}; {detail}"
        checked.append({"id": claim["id"], "lines": claim["lines"], "words": claim["words"],
                        "reading": reading(claim), "status": status, "detail": detail})
    return checked
