"""Class names, the named sets and resolve_classes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedsb.errors import ConfigError
from fedsb.signals import classes as C


def test_class_tuples_are_consistent():
    assert len(C.RML2016_CLASSES) == 11 and len(C.ALL_CLASSES) == 25
    assert C.ALL_CLASSES[:11] == C.RML2016_CLASSES  # the RML2016 set comes first
    assert len(set(C.KNOWN_CLASSES)) == len(C.KNOWN_CLASSES)  # no name twice anywhere
    assert not set(C.EXTERNAL_CLASSES) & set(C.ALL_CLASSES)
    assert all(n == n.strip().lower() for n in C.KNOWN_CLASSES)
    assert C.CLASS_SETS == {
        "rml2016": C.RML2016_CLASSES,
        "all": C.ALL_CLASSES,
        "wide25": C.WIDE25_CLASSES,
    }


@pytest.mark.parametrize(("spec", "expected"), [
    ("rml2016", C.RML2016_CLASSES),
    ("all", C.ALL_CLASSES),
    (" RML2016 ", C.RML2016_CLASSES),
    ("bpsk,qpsk", ("bpsk", "qpsk")),
    (" QPSK , bpsk ,", ("qpsk", "bpsk")),  # order kept, case and blanks ignored
    (("8psk", "AM-SSB"), ("8psk", "am-ssb")),
    (["ofdm"], ("ofdm",)),
])  # fmt: skip
def test_resolve_classes_accepts_sets_and_lists(spec, expected):
    assert C.resolve_classes(spec) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ("bpsk,qpks", "'qpks'"),
    ("64apsk", "'64apsk'"),  # known from other datasets, but not generated
    (("bpsk", "nope"), "'nope'"),
    ("", "empty"),
    (" , ", "empty"),
    ((), "empty"),
    ("bpsk,BPSK", "twice"),
])  # fmt: skip
def test_resolve_classes_errors_name_the_problem(spec, message):
    with pytest.raises(ConfigError, match=message):
        C.resolve_classes(spec)


def test_unknown_class_error_lists_the_choices():
    with pytest.raises(ConfigError) as err:
        C.resolve_classes("xyz")
    text = str(err.value)
    assert "rml2016" in text and "all" in text and "256qam" in text


@given(st.lists(st.sampled_from(C.ALL_CLASSES), min_size=1, max_size=8, unique=True))
def test_resolve_classes_round_trips_any_comma_list(names):
    assert C.resolve_classes(",".join(names)) == tuple(names)
    assert C.resolve_classes(",".join(n.upper() for n in names)) == tuple(names)
    assert C.resolve_classes(tuple(names)) == tuple(names)
