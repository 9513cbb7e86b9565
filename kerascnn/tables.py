"""Tables as text, and the mean ± sd of repeated runs that their cells show.

One place for the three forms a list of row dicts takes: a Markdown table (reports and study
tables), CSV (files other programs read) and a fixed-width table (the terminal). ``columns``
defaults to the first row's keys everywhere; a column a row lacks is an empty cell.
"""
import csv
import io

import numpy as np


def _columns(rows, columns):
    return list(columns if columns is not None else (rows[0] if rows else []))


def _plain_cell(row, column):
    return str(row.get(column, ""))


def markdown_lines(rows, columns=None, cell=None):
    """A Markdown table as a list of lines: header, rule, one line per row.

    ``cell(row, column)`` renders one cell; by default the value as ``str``.
    """
    columns = _columns(rows, columns)
    cell = cell or _plain_cell
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(cell(row, c) for c in columns) + " |" for row in rows]


def markdown_table(rows, columns=None, cell=None):
    """``markdown_lines`` joined, with a final newline: the text of a ``.md`` table file."""
    return "\n".join(markdown_lines(rows, columns, cell)) + "\n"


def csv_text(rows, columns=None):
    """CSV with a header line and ``\\n`` line ends; keys outside ``columns`` are left out."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_columns(rows, columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def console_cell(value):
    """A value as the terminal shows it: floats to 4 decimals, large numbers with thousands separators."""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return "" if value is None else str(value)


def console_table(rows, columns=None):
    """Fixed-width columns under a dashed rule, for terminal output; ``(none)`` for no rows."""
    if not rows:
        return "(none)"
    columns = _columns(rows, columns)
    cells = [[console_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(row) for row in cells])


def mean_sd(values):
    """(mean, sample standard deviation) of ``values``; the sd is None below two values, both with none."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return None, None
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None


def put_mean_sd(row, key, values):
    """Set ``row[key]`` to the mean of ``values`` and, when there are several, ``row[key + "_std"]`` to their sd."""
    mean, sd = mean_sd(values)
    row[key] = mean
    if sd is not None:
        row[f"{key}_std"] = sd
    return row


def format_mean_sd(mean, sd=None, spec=".4f"):
    """``0.7100 ± 0.0120``, or ``0.7100`` when there is no sd (a single run)."""
    return f"{mean:{spec}}" + ("" if sd is None else f" ± {sd:{spec}}")
