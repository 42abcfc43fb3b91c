"""Labelled TorchSig 2.2 narrowband records as fedsb npz files: an independent data source.

Run in TorchSig's own venv (``make bench-torchsig`` builds it; fedsb is installed there too):

    .venv-torchsig/bin/python scripts/torchsig_recordings.py --out DIR --per-class 1000 --seed 7

It writes ``DIR/torchsig.npz``: ``--per-class`` records of each class, ``--length`` samples,
TorchSig impairment ``--level`` (2: "wireless", TX + channel). Every record is a single signal
at TorchSig's own centre frequency, bandwidth and SNR (its peak in-band PSD SNR per FFT bin, not
RadioML's: the two SNR axes do not compare), labelled with our names through fedsb's alias
table (``2gfsk`` -> gfsk, ``fm`` -> wbfm, ``am-usb``/``am-lsb`` -> am-ssb, ...), and
``4ask`` -> pam4. Each record also keeps TorchSig's own metadata, what the front-end estimates
blindly (``bench/bench_frontend.py --records``): ``center`` (cycles/sample), ``bandwidth``
(a fraction of the sample rate) and the signal's ``start`` and ``stop`` samples.
The seed fixes every record (TorchSig's ``seed``). Classes are drawn in turn and kept until each
has ``--per-class`` records, so the set is balanced.

``--only NAME`` isolates one impairment (docs/data.md, "Distortion"): level-0 records without
TorchSig's RandAugment (its drop, I/Q swap, time reversal and slope), through TorchSig's
transform ``NAME`` on every record (``Fading`` on the signal, the others on the record), or
through nothing with ``--only none``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fedsb.io.labels import canonical_label  # noqa: E402
from fedsb.io.load import save_records  # noqa: E402
from fedsb.signals.recordset import RecordSet  # noqa: E402

#: TorchSig names for the 11 RadioML 2016 classes (sidebands drawn at random, as ours).
RML2016 = ("bpsk", "qpsk", "8psk", "16qam", "64qam", "4ask", "2fsk", "2gfsk", "fm", "am-dsb",
           "am-usb", "am-lsb")  # fmt: skip
FS = 10e6  # TorchSig's narrowband sample rate (Hz)
#: TorchSig's 4ask is bipolar (levels linspace(-1, 1, 4), constellation_maps.py): our pam4. Our
#: own 4ask is unipolar (0..3), so the alias table's 4ask would be the wrong class here.
OURS = {"4ask": "pam4"}
#: TorchSig's metadata kept per record besides the class and SNR.
TRUTH = ("center_freq", "bandwidth", "start_in_samples", "duration_in_samples")


def our_name(torchsig_name: str) -> str:
    """Our canonical name for a TorchSig class name."""
    return OURS.get(torchsig_name) or canonical_label(torchsig_name) or torchsig_name


#: TorchSig transforms that act on the signal before it is placed in the record (``--only``).
SIGNAL_ONLY = ("Fading",)


def _transforms(level: int, only: str | None) -> tuple[list, list]:
    """(signal, record) transforms: level ``level``'s, or one transform alone (``--only``)."""
    from torchsig.transforms import transforms
    from torchsig.transforms.impairments import Impairments

    if only is None:
        imp = Impairments(level=level)
        return [imp.signal_transforms], [imp.dataset_transforms]
    kind = None if only == "none" else getattr(transforms, only, None)
    if only != "none" and not isinstance(kind, type):
        raise LookupError(f"--only {only!r}: TorchSig has no such transform")
    one = [] if kind is None else [kind()]
    return (one, []) if only in SIGNAL_ONLY else ([], one)


def dataset(classes: tuple[str, ...], length: int, level: int, seed: int, only: str | None = None):
    """TorchSig's narrowband iterable dataset: one signal per record, raw IQ out."""
    from torchsig.datasets.datasets import TorchSigIterableDataset
    from torchsig.utils.defaults import TorchSigDefaults

    md = TorchSigDefaults().default_dataset_metadata
    md.update(num_iq_samples_dataset=length, fft_size=64, fft_stride=64, num_signals_min=1,
              num_signals_max=1, cochannel_overlap_probability=0.0,
              signal_duration_in_samples_min=int(0.8 * length),
              signal_duration_in_samples_max=length)  # fmt: skip
    signal, record = _transforms(level, only)
    return TorchSigIterableDataset(
        signal_generators=list(classes), metadata=md, transforms=record,
        component_transforms=signal,
        target_labels=["class_name", "snr_db", *TRUTH], seed=seed,
    )  # fmt: skip


def generate(
    per_class: int, length: int, level: int, seed: int, only: str | None = None
) -> RecordSet:
    """``per_class`` records of each of our 11 classes (TorchSig's am-usb and am-lsb pooled)."""
    names = tuple(dict.fromkeys(our_name(c) for c in RML2016))
    iq, labels, snr, truth = [], [], [], []
    counts = dict.fromkeys(names, 0)
    for x, (name, snr_db, *meta) in dataset(RML2016, length, level, seed, only):
        ours = our_name(str(name))
        if counts[ours] >= per_class:
            if min(counts.values()) >= per_class:
                break
            continue
        counts[ours] += 1
        iq.append(np.asarray(x, np.complex64)[:length])
        labels.append(names.index(ours))
        snr.append(float(snr_db))
        truth.append([float(v) for v in meta])
    center, bandwidth, start, duration = np.asarray(truth, np.float64).T
    meta = {
        "snr_db": np.asarray(snr, np.float32),
        "center": (center / FS).astype(np.float32),
        "bandwidth": (bandwidth / FS).astype(np.float32),
        "start": start.astype(np.int64),
        "stop": np.minimum(start + duration, length).astype(np.int64),
    }
    info = {"source": "torchsig 2.2.0", "level": 0 if only else level, "seed": seed,
            "torchsig_classes": RML2016, **({"only": only} if only else {})}  # fmt: skip
    return RecordSet(np.stack(iq), np.asarray(labels, np.int64), names, meta, FS, info)


def main(argv: list[str] | None = None) -> int:
    """Generate and write ``OUT/torchsig.npz``; prints one JSON line of what was written."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--level", type=int, choices=(0, 1, 2), default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", help="one TorchSig transform alone on level 0, or none")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    a = p.parse_args(argv)
    path = a.out / "torchsig.npz"
    if path.exists() and not a.force:
        print(f"error: {path}: exists (use --force to replace it)", file=sys.stderr)
        return 2
    if not 1 <= a.per_class <= 100_000 or not 64 <= a.length <= 65536:
        print("error: --per-class must be in 1..100000 and --length in 64..65536", file=sys.stderr)
        return 2
    if a.only is not None and not (a.only == "none" or a.only.isidentifier()):
        print(f"error: --only {a.only!r}: not a TorchSig transform name", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        records = generate(a.per_class, a.length, a.level, a.seed, a.only)
    except LookupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    save_records(records, path)
    seconds = round(time.perf_counter() - start, 1)
    print(json.dumps({"path": str(path), "records": len(records), "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
