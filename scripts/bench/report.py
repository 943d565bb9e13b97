"""Figures to text: median/min/max of a list of values, and the side-by-side rows of a case
as a Markdown table (readable in a terminal, ready for BENCHMARKS.md)."""

import statistics


def summary(values):
    return statistics.median(values), min(values), max(values)


def ms(seconds):
    return f"{seconds * 1000:.0f} ms"


def secs(seconds):
    return f"{seconds:.2f} s"


def spread(values, unit=ms):
    median, low, high = summary(values)
    return f"{unit(median)} ({unit(low)}–{unit(high)})"


def ratio(ours, theirs):
    if not ours or not theirs:
        return "–"
    a, b = statistics.median(ours), statistics.median(theirs)
    return f"{a / b:.2f}×" if b > 0 else "–"


class Table:
    def __init__(self, title, columns):
        self.title = title
        self.columns = columns
        self.rows = []
        self.notes = []

    def row(self, *cells):
        self.rows.append([str(c) for c in cells])

    def note(self, text):
        self.notes.append(text)

    def text(self):
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row)]
        line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
        out = [f"### {self.title}", "", line(self.columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += [line(r) for r in self.rows]
        if self.notes:
            out += ["", " ".join(self.notes)]
        return "\n".join(out) + "\n"


def side_by_side(title, runs, rows, note=None, unit=ms, sides=("`ocelot build`", "`docker run --rm`")):
    """rows: (label, ocelot values, docker values). Median (min–max) and the ratio of medians."""
    table = Table(f"{title} — {runs} run{'s' if runs != 1 else ''}, alternating",
                  ["", f"{sides[0]}, median (min–max)", f"{sides[1]}, median (min–max)", "ratio"])
    for label, ours, theirs in rows:
        table.row(label, spread(ours, unit) if ours else "–", spread(theirs, unit) if theirs else "–",
                  ratio(ours, theirs))
    if note:
        table.note(note)
    return table
