"""Reading and writing record sets: .npz cache, SigMF, RadioML 2016/2018, and class aliases."""

from .budget import input_budget
from .cache import load_npz, read_npz_members, save_npz
from .labels import ALIASES, canonical_label, order_classes
from .load import check_records, load_records, save_records
from .radioml import read_rml2016, read_rml2018
from .sigmf_read import read_sigmf
from .sigmf_write import write_sigmf

__all__ = [
    "ALIASES",
    "canonical_label",
    "check_records",
    "input_budget",
    "load_npz",
    "load_records",
    "order_classes",
    "read_npz_members",
    "read_rml2016",
    "read_rml2018",
    "read_sigmf",
    "save_npz",
    "save_records",
    "write_sigmf",
]
