"""`index.html` of a splice results folder: one self-contained page, relative links only, opens from file://.

Header: what was run (model label, weights, step, patch, grid, mean-shift mode), how the heatmaps are drawn, the
summary table (model, untrained control, random map, margins) and `score_plots.png` (detection ROC/PR curves when
labels are known, score histograms). Then a row per image: input, heatmap with colour bar, ncuts map, ground
truth, score(s) and per-image metrics; every column with numbers sorts on a click (a few lines of inline JS; no
network, no external file). Used by `exif-jax splice --out` and `python -m eval.splice --out`.
"""
from __future__ import annotations

import html
import math
import pathlib

from exif_jax.splice.figures import HEAT_FLOOR

POLARITY = (f"Heatmaps show |map - median(map)| on an absolute scale from 0 to max({HEAT_FLOOR}, the image's "
            "maximum) in the map's units (mean 1 - cos between patch embeddings): the median cell belongs to the "
            "majority of the photo, so the majority is cold and the region that differs from it (normally the "
            "spliced one) is hot, whichever cluster the mean shift's mode fell in; an authentic photo stays cold. "
            "Localization metrics score the raw map and its inversion and keep the better (the zero-shot map has "
            "no sign).")

_CSS = """
body{font-family:sans-serif;margin:1.2em;color:#222}
table{border-collapse:collapse;margin:0.6em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:middle}
th{background:#f0f0f0}
th.sortable{cursor:pointer}
th.sortable:after{content:" \\2195";color:#999}
td.name{text-align:left;max-width:14em;word-break:break-all}
img.thumb{max-width:320px;max-height:260px}
img#plots{max-width:100%}
p.note{max-width:70em;font-size:90%}
"""

_JS = """
function sortBy(th){
  var table=th.closest('table'), col=th.cellIndex, body=table.tBodies[0];
  var asc=th.getAttribute('data-dir')!=='asc';
  th.setAttribute('data-dir', asc?'asc':'desc');
  var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){
    var x=parseFloat(a.cells[col].getAttribute('data-v')), y=parseFloat(b.cells[col].getAttribute('data-v'));
    if(isNaN(x)) x=-Infinity; if(isNaN(y)) y=-Infinity;
    return asc? x-y : y-x;
  });
  rows.forEach(function(r){body.appendChild(r);});
}
document.querySelectorAll('th.sortable').forEach(function(th){th.addEventListener('click',function(){sortBy(th);});});
"""


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    return html.escape(str(v))


def _num(v) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "nan"
    return "nan" if math.isnan(f) else repr(f)


def summary_table(rows: dict[str, dict], columns: list[tuple[str, str]]) -> str:
    head = "<tr><th>method</th>" + "".join(f"<th>{html.escape(c)}</th>" for _, c in columns) + "</tr>"
    body = []
    for name, summ in rows.items():
        cells = "".join(f"<td>{_fmt(summ.get(k))}</td>" for k, _ in columns)
        body.append(f"<tr><td class='name'>{html.escape(name)}</td>{cells}</tr>")
    return f"<table id='summary'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def _img(rel) -> str:
    if not rel:
        return "<td>-</td>"
    src = html.escape(pathlib.PurePosixPath(rel).as_posix(), quote=True)
    return f"<td><a href='{src}'><img class='thumb' src='{src}' alt='{src}'></a></td>"


def write_index(out_dir, *, title: str, provenance: dict, rows: list[dict], image_columns: list[tuple[str, str]],
                value_columns: list[tuple[str, str]], summary: dict[str, dict] | None = None,
                summary_columns: list[tuple[str, str]] | None = None, plots: str | None = None,
                notes: list[str] = ()) -> pathlib.Path:
    """Write `out_dir/index.html`. `rows`: dicts with `name`, image paths (relative to `out_dir`) under the keys of
    `image_columns`, numbers under the keys of `value_columns` (sortable). Returns the page's path."""
    out_dir = pathlib.Path(out_dir)
    prov = "".join(f"<tr><th>{html.escape(k)}</th><td class='name'>{_fmt(v)}</td></tr>"
                   for k, v in provenance.items())
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", f"<table id='provenance'>{prov}</table>",
             f"<p class='note'>{html.escape(POLARITY)}</p>"]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]
    if summary:
        parts += ["<h2>Summary</h2>", summary_table(summary, summary_columns or [])]
    if plots:
        src = html.escape(plots, quote=True)
        parts.append(f"<p><img id='plots' src='{src}' alt='detection curves and score histograms'></p>")
    head = ("<tr><th>image</th>" + "".join(f"<th>{html.escape(c)}</th>" for _, c in image_columns)
            + "".join(f"<th class='sortable'>{html.escape(c)}</th>" for _, c in value_columns) + "</tr>")
    body = []
    for r in rows:
        cells = [f"<td class='name'>{html.escape(str(r.get('name', '')))}</td>"]
        cells += [_img(r.get(k)) for k, _ in image_columns]
        cells += [f"<td data-v='{_num(r.get(k))}'>{_fmt(r.get(k))}</td>" for k, _ in value_columns]
        body.append("<tr>" + "".join(cells) + "</tr>")
    parts += [f"<h2>Images ({len(rows)})</h2><p class='note'>Click a column title to sort.</p>",
              f"<table id='images'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>",
              f"<script>{_JS}</script></body></html>"]
    path = out_dir / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(path)
    return path
