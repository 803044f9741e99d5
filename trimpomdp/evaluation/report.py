"""Results tables: Markdown for humans, versioned JSON for machines."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from trimpomdp._io import dumps_json, envelope, write_files

COLUMNS = (("policy", "policy"), ("cpt50", "CPT(50%)"), ("cpt80", "CPT(80%)"),
           ("cpt95", "CPT(95%)"), ("delta_ibc_mean", "ΔIBC mean-over-curve"),
           ("delta_ibc_best", "ΔIBC best-point"), ("acc_at_10pct", "acc @10% budget"),
           ("acc_at_20pct", "acc @20% budget"), ("max_accuracy", "max acc"))


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = COLUMNS
                   ) -> str:
    """A Markdown table of ``rows`` (missing values shown as —: target not reached)."""
    head = "| " + " | ".join(h for _, h in columns) + " |"
    sep = "|" + "---|" * len(columns)
    body = ["| " + " | ".join(_fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def report_stem(stem: str | os.PathLike[str]) -> str:
    """``stem`` without a trailing ``.md`` / ``.json`` (so ``--out res.json`` writes res.*)."""
    text = os.fspath(stem)
    for suf in (".md", ".json"):
        if text.endswith(suf) and len(text) > len(suf):
            return text[: -len(suf)]
    return text


def render_report(stem: str | os.PathLike[str], rows: Sequence[dict[str, Any]], *,
                  title: str = "Results", notes: Sequence[str] = (), **meta: Any
                  ) -> dict[str, str]:
    """``{stem.md: table + notes, stem.json: rows + meta}``; non-finite numbers raise InputError."""
    stem = report_stem(stem)
    md = [f"# {title}", "", markdown_table(rows), ""] + [f"- {n}" for n in notes]
    doc = envelope("results_table", {"rows": list(rows)}, **meta)
    return {stem + ".json": dumps_json(doc, stem + ".json"), stem + ".md": "\n".join(md) + "\n"}


def write_report(stem: str | os.PathLike[str], rows: Sequence[dict[str, Any]], *,
                 title: str = "Results", notes: Sequence[str] = (), **meta: Any) -> None:
    """Write ``stem.md`` (table + notes) and ``stem.json`` (rows + meta), all-or-nothing."""
    write_files(render_report(stem, rows, title=title, notes=notes, **meta))
