"""The alias table: every external spelling lands on the intended canonical class."""

from __future__ import annotations

import pytest

from fedsb.errors import ConfigError
from fedsb.io.labels import (
    ALIASES,
    RML2016_NAMES,
    RML2018_CLASSES_TXT,
    RML2018_NAMES,
    canonical_label,
    class_list,
    order_classes,
    rml2018_names,
)
from fedsb.signals.classes import KNOWN_CLASSES, RML2016_CLASSES


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # RadioML 2016.10a/b
        ("8PSK", "8psk"),
        ("AM-DSB", "am-dsb"),
        ("AM-SSB", "am-ssb"),
        ("BPSK", "bpsk"),
        ("CPFSK", "cpfsk"),
        ("GFSK", "gfsk"),
        ("PAM4", "pam4"),
        ("QAM16", "16qam"),
        ("QAM64", "64qam"),
        ("QPSK", "qpsk"),
        ("WBFM", "wbfm"),
        # RadioML 2018.01a specials
        ("AM-SSB-WC", "am-ssb-wc"),
        ("AM-SSB-SC", "am-ssb"),
        ("AM-DSB-WC", "am-dsb"),
        ("AM-DSB-SC", "am-dsb-sc"),
        ("FM", "wbfm"),
        ("GMSK", "gmsk"),
        ("OQPSK", "oqpsk"),
        ("128APSK", "128apsk"),
        ("128QAM", "128qam"),
        ("OOK", "ook"),
        # TorchSig 2.2
        ("2fsk", "cpfsk"),
        ("2gfsk", "gfsk"),
        ("2msk", "msk"),
        ("2gmsk", "gmsk"),
        ("4fsk", "4fsk"),
        ("8gmsk", "8gmsk"),
        ("16msk", "16msk"),
        ("4ask", "4ask"),
        ("64psk", "64psk"),
        ("32qam_cross", "32qam"),
        ("32qam", "32qam"),
        ("128qam_cross", "128qam"),
        ("512qam_cross", "512qam"),
        ("1024qam", "1024qam"),
        ("ofdm-64", "ofdm"),
        ("ofdm-2048", "ofdm"),
        ("fm", "wbfm"),
        ("am-dsb", "am-dsb"),
        ("am-dsb-sc", "am-dsb-sc"),
        ("am-usb", "am-ssb"),
        ("am-lsb", "am-ssb"),
        ("lfm-data", "lfm"),
        ("lfm_data", "lfm"),
        ("lfm-radar", "lfm"),
        ("chirpss", "chirpss"),
        ("tone", "tone"),
        ("16apsk", "16apsk"),
        # common spellings
        ("16QAM", "16qam"),
        ("16-QAM", "16qam"),
        ("qam_16", "16qam"),
        ("16 QAM", "16qam"),
        ("Qam-64", "64qam"),
        ("2PSK", "bpsk"),
        ("4PSK", "qpsk"),
        ("8-PSK", "8psk"),
        ("psk8", "8psk"),
        ("4PAM", "pam4"),
        ("PAM-4", "pam4"),
        ("pam_4", "pam4"),
        ("  bpsk  ", "bpsk"),
        ("O-QPSK", "oqpsk"),
        ("4QAM", "qpsk"),
        ("AM", "am-dsb"),
        ("SSB", "am-ssb"),
        ("USB", "am-ssb"),
        ("WFM", "wbfm"),
        ("BFSK", "cpfsk"),
    ],
)
def test_alias(name: str, expected: str) -> None:
    assert canonical_label(name) == expected


@pytest.mark.parametrize("name", ["", "   ", "QAM", "psk", "foo", "adsb-long", "80211a", "lora"])
def test_unknown_names_give_none(name: str) -> None:
    assert canonical_label(name) is None


def test_non_string_gives_none() -> None:
    assert canonical_label(16) is None  # type: ignore[arg-type]


def test_every_alias_targets_a_known_class_and_resolves_to_it() -> None:
    for alias, canonical in ALIASES.items():
        assert canonical in KNOWN_CLASSES, alias
        assert canonical_label(alias) == canonical, alias


def test_canonical_names_map_to_themselves_except_the_folded_ssb_sc() -> None:
    moved = {name: canonical_label(name) for name in KNOWN_CLASSES if canonical_label(name) != name}
    assert moved == {"am-ssb-sc": "am-ssb"}


def test_rml2016_names_are_the_rml2016_class_set() -> None:
    assert {canonical_label(n) for n in RML2016_NAMES} == set(RML2016_CLASSES)


def test_rml2018_names_map_to_24_distinct_classes() -> None:
    mapped = [canonical_label(n) for n in RML2018_NAMES]
    assert None not in mapped
    assert len(set(mapped)) == 24


def test_order_classes_uses_known_order_then_alphabetical() -> None:
    assert order_classes({"zeta", "qpsk", "bpsk", "alpha", "tone"}) == (
        "bpsk",
        "qpsk",
        "tone",
        "alpha",
        "zeta",
    )


def test_rml2018_classes_txt_is_the_published_list_and_a_permutation() -> None:
    # the order printed in the dataset's classes.txt (radioML/dataset#25)
    assert RML2018_CLASSES_TXT[:5] == ("32PSK", "16APSK", "32QAM", "FM", "GMSK")
    assert RML2018_CLASSES_TXT[-3:] == ("AM-DSB-WC", "OOK", "16QAM")
    assert sorted(RML2018_CLASSES_TXT) == sorted(RML2018_NAMES)
    assert RML2018_CLASSES_TXT != RML2018_NAMES
    assert rml2018_names("corrected") == RML2018_NAMES
    assert rml2018_names("classes-txt") == RML2018_CLASSES_TXT


def test_class_lists_take_set_names_aliases_and_files_only_names():
    assert class_list("BPSK, QAM16,2FSK") == ("bpsk", "16qam", "cpfsk")
    assert class_list("64apsk") == ("64apsk",)  # a RadioML 2018 class the generator lacks
    assert class_list("rml2016")[0] == "bpsk" and len(class_list("wide25")) == 25
    assert class_list("bpsk,my-radar") == ("bpsk", "my-radar")  # for the files to hold


@pytest.mark.parametrize(
    ("spec", "strict", "message"),
    [
        ("bpsk,nosuch", True, r"--classes: unknown class 'nosuch'"),
        ("bpsk,BPSK", False, r"--classes: 'bpsk' is listed twice"),
        ("qam16,16qam", True, r"--classes: '16qam' is listed twice"),
        (" , ", False, r"--classes: empty class list"),
    ],
)
def test_bad_class_lists_name_the_option(spec, strict, message):
    with pytest.raises(ConfigError, match=message):
        class_list(spec, "--classes", strict=strict)
