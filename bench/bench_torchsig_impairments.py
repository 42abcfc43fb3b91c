"""What each TorchSig impairment costs a backbone: zero-shot accuracy with one impairment alone.

Run (TorchSig's venv must exist: ``make bench-torchsig``)::

    python bench/bench_torchsig_impairments.py --out runs/ts-impairments
    python bench/bench_torchsig_impairments.py --out runs/ts-impairments --model RUN --model RUN2

Each set is TorchSig 2.2 level 0 of our seed 7 (``--per-class`` records of each of the 11
RML2016 classes) with TorchSig's RandAugment off and one of its level-2 transforms applied to
every record (``scripts/torchsig_recordings.py --only NAME``); ``none`` has nothing and
``level 0`` is TorchSig's own level 0 (RandAugment on). The sets are made once under ``OUT``
and only ever scored. Printed: accuracy at TorchSig SNR >= 20 dB per set and model, and the
points it loses against ``none``. About 35 s a set on one thread, half of it TorchSig.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_transfer import ROOT, TARGET, _call, zero_shot  # noqa: E402

from fedsb.reporter import SilentReporter  # noqa: E402
from fedsb.training.pretrain import resolve_pretrained  # noqa: E402

#: TorchSig 2.2's level-2 transforms (transforms/impairments.py), each tried alone.
IMPAIRMENTS = (
    "Fading", "IntermodulationProducts", "NonlinearAmplifier", "CoarseGainChange",
    "PassbandRipple", "IQImbalance", "CarrierPhaseNoise", "CarrierFrequencyDrift",
    "CarrierPhaseOffset", "ClockDrift", "ClockJitter", "Quantize", "DigitalAGC",
    "SpectralInversion", "AddSlope", "ChannelSwap", "TimeReversal",
)  # fmt: skip
HIGH_SNR = 20.0


def make_set(out: Path, name: str, per_class: int) -> Path | None:
    """OUT/NAME/torchsig.npz, generated when missing (None when TorchSig is not installed)."""
    path = out / name / "torchsig.npz"
    if path.exists():
        return path
    py = str(ROOT / ".venv-torchsig" / "bin" / "python")
    cmd = [py, str(ROOT / "scripts" / "torchsig_recordings.py"), "--out", str(path.parent),
           "--per-class", str(per_class), "--seed", "7"]  # fmt: skip
    cmd += ["--level", "0"] if name == "level0" else ["--only", name]
    return path if _call(cmd, f"torchsig {name}") else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/ts-impairments"))
    p.add_argument("--model", action="append", help="preset or run (repeatable)")
    p.add_argument("--per-class", type=int, default=150)
    p.add_argument("--only", help="comma list of impairments (default: all)")
    p.add_argument("--cache", type=Path, default=Path(".cache/fedsb"))
    a = p.parse_args(argv)
    specs = a.model or ["pretrain-broad"]
    models = [resolve_pretrained(m, a.cache, SilentReporter()).parent for m in specs]
    names = ["none", "level0", *(a.only.split(",") if a.only else IMPAIRMENTS)]
    table: dict[str, list[float]] = {}
    for name in names:
        path = make_set(a.out, name, a.per_class)
        if path is None:
            return 1
        table[name] = [zero_shot(m, path, HIGH_SNR, TARGET)["high_snr"] for m in models]
    (a.out / "impairments.json").write_text(json.dumps({"models": [str(m) for m in models],
                                                        "high_snr": table}, indent=1))  # fmt: skip
    print(f"| TorchSig level 0 plus | {' | '.join(str(m) for m in models)} |")
    print("|---|" + "---|" * len(models))
    for name, accs in table.items():
        cells = [f"{x:.1%} ({100 * (x - table['none'][i]):+.1f})" for i, x in enumerate(accs)]
        print(f"| {name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
