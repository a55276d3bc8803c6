"""Tables for the book: what a cell returns to show rows of numbers.

A :class:`Table` renders as an HTML table in Jupyter, Colab and the rendered book
(``_repr_html_``), as a Markdown table where Markdown is preferred (``_repr_markdown_``) and as
aligned text in a terminal (``str``).  It knows nothing of runs or models: cells pass the values,
already chosen, :func:`mean_std` formats a summary as "mean ± std" and :func:`relative_change`
a ratio as a signed percentage. :func:`glue` hands a computed value to the prose of the book.
"""
from __future__ import annotations

import html
import numbers
from collections.abc import Iterable, Sequence

NUMERIC_START = tuple("0123456789+-−.") + ("–",)


def format_cell(value) -> str:
    """How a cell value is written: ints with thousands separators, floats to 3 significant
    digits, ``None`` as an en dash (nothing to show), anything else with ``str``."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if isinstance(value, numbers.Real):
        return f"{value:.3g}"
    return str(value)


def mean_std(summary: dict | None, *, scale: float = 100, digits: int = 1, unit: str = "") -> str | None:
    """'12.3 ± 0.4' from a :meth:`Runs.summary <resnet_book.results.Runs.summary>` entry (mean and
    std over seeds, times ``scale``: per cent by default); one seed gives '12.3 (1 seed)'; ``None``
    (no runs) stays ``None``."""
    if summary is None:
        return None
    mean = f"{scale * summary['mean']:.{digits}f}{unit}"
    if summary.get("n", 2) < 2:
        return f"{mean} (1 seed)"
    return f"{mean} ± {scale * summary['std']:.{digits}f}{unit}"


def relative_change(new: float, old: float, *, digits: int = 1) -> str:
    """How much larger ``new`` is than ``old``, in per cent with a sign: '+5.1%', '-0.3%'."""
    if not old:
        raise ValueError(f"relative_change: the reference value must be non-zero, got {old!r}")
    return f"{100 * (new / old - 1):+.{digits}f}%"


def glue(name: str, value) -> None:
    """Make ``value`` quotable in the prose as ``{glue:text}`name``` (myst-nb's glue, nothing shown
    in the cell). A number the prose quotes is glued from the cell that computes it, never typed.
    Where myst-nb is not installed (Colab, a plain Jupyter) there is no prose to fill: it does nothing."""
    if not isinstance(name, str) or not name or any(ch.isspace() or ch in ":`" for ch in name):
        raise ValueError(f"glue: the name must be a non-empty string without spaces, ':' or '`', got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=False)


def glue_all(facts: dict, *, prefix: str) -> None:
    """:func:`glue` every entry of ``facts`` (name -> value) as ``<prefix>-<name>``: the numbers a
    library function computed for the prose in one call (e.g. ``scorecard.comparison_facts``)."""
    for name, value in facts.items():
        glue(f"{prefix}-{name}", value)


class Table:
    """Rows of cells under named columns, with an optional caption (above) and note (below, e.g.
    where the numbers come from).

    ``align`` is one letter per column, ``"l"`` or ``"r"``; by default a column is right-aligned
    when all its cells are numbers.  ``empty`` is what a table without rows says instead.
    """

    def __init__(self, columns: Sequence[str], rows: Iterable[Sequence], *, caption: str = "", note: str = "",
                 align: str | None = None, empty: str = "No rows."):
        self.columns = [str(c) for c in columns]
        if not self.columns:
            raise ValueError("a table needs at least one column")
        self.rows = [[format_cell(v) for v in row] for row in rows]
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"row {i} has {len(row)} cells but the table has {len(self.columns)} columns "
                                 f"({', '.join(self.columns)})")
        if align is None:
            align = "".join("r" if self.rows and all(c.startswith(NUMERIC_START) for c in col) else "l"
                            for col in zip(*self.rows)) if self.rows else "l" * len(self.columns)
        if len(align) != len(self.columns) or set(align) - {"l", "r"}:
            raise ValueError(f"align must be one of 'l'/'r' per column ({len(self.columns)} letters), got {align!r}")
        self.align, self.caption, self.note, self.empty = align, caption, note, empty

    def column(self, name: str) -> list[str]:
        """The formatted cells of the column ``name``."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; the columns are {self.columns}")
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def _repr_html_(self) -> str:
        esc = html.escape
        style = {"l": "text-align: left", "r": "text-align: right"}
        parts = ['<div class="resnet-book-table">']
        if not self.rows:
            parts.append(f"<p>{esc(self.empty)}</p>")
        else:
            parts.append('<table class="table">')
            if self.caption:
                parts.append(f"<caption>{esc(self.caption)}</caption>")
            parts.append("<thead><tr>" + "".join(f'<th style="{style[a]}">{esc(c)}</th>'
                                                 for c, a in zip(self.columns, self.align)) + "</tr></thead><tbody>")
            for row in self.rows:
                parts.append("<tr>" + "".join(f'<td{self._nowrap(c, a)} style="{style[a]}">{esc(c)}</td>'
                                              for c, a in zip(row, self.align)) + "</tr>")
            parts.append("</tbody></table>")
        if self.note:
            parts.append(f'<p class="resnet-book-table-note">{esc(self.note)}</p>')
        parts.append("</div>")
        return "".join(parts)

    @staticmethod
    def _nowrap(cell: str, align: str) -> str:
        """The class that keeps a cell on one line (the book's CSS): numbers (right-aligned columns,
        e.g. '55.7 ± 0.8') and one-word cells (e.g. 'ResNet-110', never split at its hyphen).
        Other cells wrap at their spaces."""
        return ' class="resnet-book-nowrap"' if align == "r" or not any(ch.isspace() for ch in cell) else ""

    def _repr_markdown_(self) -> str:
        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        lines = [f"**{cell(self.caption)}**", ""] if self.caption else []
        if self.rows:
            lines.append("| " + " | ".join(cell(c) for c in self.columns) + " |")
            lines.append("|" + "|".join("---:" if a == "r" else ":---" for a in self.align) + "|")
            lines.extend("| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows)
        else:
            lines.append(self.empty)
        if self.note:
            lines += ["", cell(self.note)]
        return "\n".join(lines)

    def __str__(self) -> str:
        if not self.rows:
            return "\n".join(filter(None, [self.caption, self.empty, self.note]))
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) for i, c in enumerate(self.columns)]

        def line(cells):
            return "  ".join(c.rjust(w) if a == "r" else c.ljust(w)
                             for c, w, a in zip(cells, widths, self.align)).rstrip()

        body = [line(self.columns), "  ".join("-" * w for w in widths)] + [line(r) for r in self.rows]
        return "\n".join(filter(None, [self.caption, *body, self.note]))

    def __repr__(self) -> str:
        return str(self)
