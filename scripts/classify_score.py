"""Score ``fedsb classify`` on a GNU Radio ``bursts`` recording against its ``truth.json``.

Run with the repo venv: ``.venv/bin/python scripts/classify_score.py TRUTH RESULT.json``
(``--json OUT`` also writes the figures). ``annotate TRUTH DIR`` writes the recording again with
the true spans as annotations (the data linked), to tell the detector's share of the label
errors from the model's. See docs/classify.md.

Rules: a true burst is found when one detection overlaps it by at least half of the longer of
the two (the detection overlapping it most is its match). Labels are scored on the true
bursts: a missed burst or an ``unknown`` is wrong. A false detection overlaps no true burst.
Unknowns are counted on the bursts found: of the classes the model knows ("seen"), of those
whose top class was right ("right -> unknown"), and of the classes it never saw ("unseen").
``table NAME=SCORE.json ...`` prints the docs/classify.md tables from ``--json`` outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fedsb.io.labels import canonical_label  # noqa: E402

#: SNR bands of the table (dB, [lo, hi)).
BANDS = ((-99.0, -5.0), (-5.0, 0.0), (0.0, 10.0), (10.0, 99.0))


def overlap(a: dict, b: dict) -> int:
    """Samples two spans share."""
    return min(a["start"] + a["count"], b["start"] + b["count"]) - max(a["start"], b["start"])


def match(truth: list[dict], found: list[dict]) -> list[dict | None]:
    """Per true burst: the detection overlapping it most, if it covers half the longer one."""
    out: list[dict | None] = []
    starts = sorted(found, key=lambda b: b["start"])
    for t in truth:
        near = [b for b in starts if overlap(t, b) > 0]
        best = max(near, key=lambda b: overlap(t, b), default=None)
        ok = best is not None and overlap(t, best) >= 0.5 * max(t["count"], best["count"])
        out.append(best if ok else None)
    return out


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def score(truth: list[dict], found: list[dict], classes: list[str]) -> dict[str, Any]:
    """Found, false detections, labels and unknowns (see module doc) of one recording."""
    matches = match(truth, found)
    known = set(classes)
    rows = []
    for t, m in zip(truth, matches, strict=True):
        label = canonical_label(t["label"]) or t["label"].lower()
        rows.append({"snr": t["snr_db"], "true": label, "seen": label in known,
                     "found": m is not None, "label": m["label"] if m else None,
                     "top1": m["top1"] if m else None})  # fmt: skip
    out: dict[str, Any] = {"bursts": len(rows), "detections": len(found)}
    out["false_detections"] = sum(not any(overlap(b, t) > 0 for t in truth) for b in found)
    out["found"] = _share([r["found"] for r in rows])
    for lo, hi in (*BANDS, (0.0, 99.0)):
        band = [r for r in rows if lo <= r["snr"] < hi]
        out[f"found[{lo:g},{hi:g})"] = _share([r["found"] for r in band])
        out[f"n[{lo:g},{hi:g})"] = len(band)
    seen, unseen = [r for r in rows if r["seen"]], [r for r in rows if not r["seen"]]
    high = [r for r in seen if r["snr"] >= 10]
    out["labels_right_ge10"] = _share([r["label"] == r["true"] for r in high])
    out["top1_right_ge10"] = _share([r["top1"] == r["true"] for r in high])
    out["n_ge10"] = len(high)
    for name, group in (("seen", seen), ("unseen", unseen)):
        hit = [r for r in group if r["found"]]
        out[f"{name}_unknown"] = _share([r["label"] == "unknown" for r in hit])
        high_hit = [r for r in hit if r["snr"] >= 10]
        out[f"{name}_unknown_ge10"] = _share([r["label"] == "unknown" for r in high_hit])
        out[f"{name}_found"] = len(hit)
    right = [r for r in seen if r["found"] and r["top1"] == r["true"]]
    out["seen_right_called_unknown"] = _share([r["label"] == "unknown" for r in right])
    errors = Counter(f"{r['true']}->{r['label']}" for r in high if r["label"] != r["true"])
    out["errors_ge10"] = dict(errors.most_common())
    return out


def annotate(truth_path: Path, out: Path) -> Path:
    """The recording beside ``truth_path`` with the true spans as annotations, into ``out``."""
    truth = json.loads(truth_path.read_text())
    meta_path = truth_path.parent / truth["recording"]
    meta = json.loads(meta_path.read_text())
    meta["annotations"] = [{"core:sample_start": b["start"], "core:sample_count": b["count"],
                            "core:label": b["label"], "capture_details:SNRdB": b["snr_db"]}
                           for b in truth["bursts"]]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    data = out / meta_path.with_suffix(".sigmf-data").name
    if not data.exists():
        os.symlink(meta_path.with_suffix(".sigmf-data").resolve(), data)
    target = out / meta_path.name
    target.write_text(json.dumps(meta, indent=1))
    return target


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


HEAD = (
    "| recording | found | < −5 dB | −5…0 dB | ≥ 0 dB | false detections | labels right ≥ 10 dB "
    "| top class right ≥ 10 dB | seen → unknown: all (≥ 10 dB) | right → unknown |"
)
UNSEEN_HEAD = "| unseen classes | found | → unknown: all | ≥ 10 dB |"


def table(named: list[tuple[str, dict]]) -> str:
    """Markdown rows of scored recordings: (name, figures) with seen classes, then unseen."""
    rows = [HEAD, "|---" * 10 + "|"]
    for name, f in named:
        if f["n_ge10"]:
            rows.append(
                f"| {name} | {_pct(f['found'])} | {_pct(f['found[-99,-5)'])} | "
                f"{_pct(f['found[-5,0)'])} | {_pct(f['found[0,99)'])} | {f['false_detections']} "
                f"| {_pct(f['labels_right_ge10'])} (n = {f['n_ge10']}) | "
                f"{_pct(f['top1_right_ge10'])} | "
                f"{_pct(f['seen_unknown'])} ({_pct(f['seen_unknown_ge10'])}) | "
                f"{_pct(f['seen_right_called_unknown'])} |"
            )
    rows += ["", UNSEEN_HEAD, "|---" * 4 + "|"]
    for name, f in named:
        if f["unseen_found"]:
            rows.append(
                f"| {name} | {_pct(f['found'])} | {_pct(f['unseen_unknown'])} | "
                f"{_pct(f['unseen_unknown_ge10'])} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Score (or ``annotate``, or print a ``table`` of scores), print the figures as JSON."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["annotate"]:
        print(annotate(Path(argv[1]), Path(argv[2])))
        return 0
    if argv[:1] == ["table"]:  # table NAME=SCORE.json ...
        named = [(a.split("=", 1)[0], json.loads(Path(a.split("=", 1)[1]).read_text()))
                 for a in argv[1:]]  # fmt: skip
        print(table(named))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path, help="truth.json of a bursts recording")
    parser.add_argument("result", type=Path, help="the <stem>.fedsb.json fedsb classify wrote")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    truth = json.loads(args.truth.read_text())["bursts"]
    result = json.loads(args.result.read_text())
    found = [b for b in result["bursts"] if b["source"] == "detected"] or result["bursts"]
    figures = {"thresholds": result["thresholds"], **score(truth, found, result["class_names"])}
    text = json.dumps(figures, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
