"""Write a RecordSet as one SigMF recording: one annotation per record, exact round trip.

Each record becomes an annotation with ``core:label`` and its metadata as ``fedsb:*`` fields;
class order, metadata dtypes and provenance go in the global object, so that
``read_sigmf(write_sigmf(x))`` gives back the same arrays.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from jsonschema.exceptions import ValidationError
from sigmf import sigmffile
from sigmf.error import SigMFError
from sigmf.validate import validate as sigmf_validate

from ..errors import DataError
from ..signals.recordset import RecordSet
from .cache import atomic_file, discard, temp_path
from .sigmf_archive import is_archive
from .sigmf_read import EXTENSION, one_line

log = logging.getLogger(__name__)


def _json_column(key: str, values: np.ndarray, path: Path) -> list[Any]:
    """Per-record JSON values; NaN becomes None (omitted), +-inf the strings "inf"/"-inf"."""
    if values.dtype.kind not in "biuf":
        raise DataError(path, f"meta {key!r} is {values.dtype}; SigMF output takes numbers only")
    items = values.tolist()
    if values.dtype.kind != "f":
        return items
    return [None if math.isnan(v) else (str(v) if math.isinf(v) else v) for v in items]


def _metadata(records: RecordSet, path: Path) -> dict[str, Any]:
    length = records.length
    glob: dict[str, Any] = {
        "core:datatype": "cf32_le",
        "core:sample_rate": float(records.sample_rate),
        "core:num_channels": 1,
        "core:extensions": [dict(EXTENSION)],
        "core:description": f"fedsb records: {len(records)} x {length} samples",
        "fedsb:class_names": list(records.class_names),
        "fedsb:record_length": length,
        "fedsb:meta_dtypes": {k: v.dtype.name for k, v in records.meta.items()},
    }
    try:
        glob["fedsb:info"] = json.loads(json.dumps(dict(records.info), allow_nan=False))
    except (TypeError, ValueError):
        log.debug("%s: info is not plain JSON; not stored", path)
    columns = {k: _json_column(k, v, path) for k, v in records.meta.items()}
    names = [str(n) for n in records.label_names]
    annotations = []
    for i, name in enumerate(names):
        ann: dict[str, Any] = {
            "core:sample_start": i * length,
            "core:sample_count": length,
            "core:label": name,
        }
        for key, column in columns.items():
            if column[i] is not None:
                ann[f"fedsb:{key}"] = column[i]
        snr = ann.get("fedsb:snr_db")
        if isinstance(snr, float):
            ann["core:comment"] = f"snr_db={snr!r}"
        annotations.append(ann)
    return {"global": glob, "captures": [{"core:sample_start": 0}], "annotations": annotations}


def write_sigmf(records: RecordSet, path: str | Path) -> Path:
    """Write one cf32_le recording (meta + data pair, or a ``.sigmf`` archive); returns its path.

    Both files are written to temporaries and renamed into place, data first: an error never
    touches existing files, and a crash between the two renames is caught by the checksum.
    """
    path = Path(path)
    if len(records) == 0:
        raise DataError(path, "nothing to write: the record set is empty")
    archive = is_archive(path)
    if archive and not path.name.lower().endswith(".sigmf"):
        raise DataError(path, "only uncompressed .sigmf archives can be written")
    names = sigmffile.get_sigmf_filenames(path)
    meta_path, data_path = (path, path) if archive else (names["meta_fn"], names["data_fn"])
    metadata = _metadata(records, path)
    tmp_data = temp_path(data_path, ".sigmf-data")
    tmp_meta: Path | None = None
    try:
        np.ascontiguousarray(records.iq, dtype="<c8").tofile(tmp_data)
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            sf = sigmffile.SigMFFile(metadata=metadata, data_file=tmp_data)
            # Every annotation has the same shape, so validating a few is as good as all and
            # avoids minutes of jsonschema on large sets (archives are validated in full).
            head = {
                "global": sf.get_global_info(),
                "captures": sf.get_captures(),
                "annotations": sf.get_annotations()[:3],
            }
            sigmf_validate(head, sf.get_schema())
            if archive:
                with atomic_file(path) as handle:
                    sf.archive(name=names["base_fn"].name, fileobj=handle)
                return path
        tmp_meta = temp_path(meta_path, ".tmp")
        with open(tmp_meta, "w", encoding="utf-8") as handle:
            sf.dump(handle, pretty=True)
            handle.write("\n")
        os.replace(tmp_data, data_path)
        os.replace(tmp_meta, meta_path)
        return meta_path
    except (SigMFError, ValidationError) as exc:
        raise DataError(path, f"cannot write SigMF: {one_line(exc)}") from exc
    except OSError as exc:
        raise DataError(path, f"cannot write: {exc.strerror or exc}") from exc
    finally:
        discard(tmp_data, *([tmp_meta] if tmp_meta else []))
