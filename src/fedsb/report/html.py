"""``report.html``: one self-contained file (figures embedded as data URIs, inline CSS, no JS)."""

from __future__ import annotations

import base64
import html
import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from .tables import Table

KEY_PACKAGES = ("fedsb", "torch", "flwr", "opacus", "numpy", "scipy", "matplotlib", "sigmf")

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { padding: 0.25em 0.7em; text-align: right; border-bottom: 1px solid #eee; }
th { border-bottom: 2px solid #999; } td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3em; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; } .note { font-size: 0.85em; color: #666; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.summary { background: #f3f7fb; border-left: 4px solid #1f77b4; padding: 0.6em 1em; }
"""


def versions() -> dict[str, str]:
    """Versions of Python and the key packages (what produced the numbers)."""
    out = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def table_html(table: Table) -> str:
    """A table as an HTML ``<table>`` with escaped cells, then its note if it has one."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in table.rows
    )
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (
        f'<table id="tab-{table.key}"><caption>{html.escape(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"
    )


def figure_html(png: Path, caption: str) -> str:
    """A PNG embedded as a base64 ``<figure>`` with its caption, so the report is one file."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    alt = html.escape(caption)
    return (
        f'<figure id="fig-{html.escape(Path(png).stem)}"><img alt="{alt}" '
        f'src="data:image/png;base64,{data}"><figcaption>{alt}</figcaption></figure>'
    )


def render(
    title: str,
    summary: str,
    tables: Sequence[Table],
    figures: Mapping[Path, str],
    config_text: str,
    command: str,
    notes: Sequence[str] = (),
) -> str:
    """The whole page: summary, figures (then ``notes`` on what is left out), tables, config."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    vers = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
        for k, v in versions().items()
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Generated {stamp} by <code>{html.escape(command)}</code>; '
        "every number below comes from the run's files.</p>",
        f'<p class="summary">{html.escape(summary)}</p>',
        "<h2>Figures</h2>",
        *(figure_html(png, caption) for png, caption in figures.items()),
        *(f'<p class="note">{html.escape(note)}</p>' for note in notes),
        "<h2>Tables</h2>",
        *(table_html(t) for t in tables),
        "<h2>Resolved configuration</h2>",
        f"<pre>{html.escape(config_text)}</pre>",
        "<h2>Versions</h2>",
        f"<table><thead><tr><th>package</th><th>version</th></tr></thead><tbody>{vers}"
        f'</tbody></table><p class="note">{html.escape(sys.platform)}</p>',
        "</body></html>",
    ]
    return "\n".join(parts)
