"""Canonical class names and the named class sets.

Names are lower-case and stable: they are written into caches, SigMF labels and checkpoints.
"""

from __future__ import annotations

from ..errors import ConfigError

#: The 11 classes of RadioML 2016.10a, in our canonical spelling.
RML2016_CLASSES: tuple[str, ...] = (
    "bpsk", "qpsk", "8psk", "16qam", "64qam", "pam4",
    "cpfsk", "gfsk", "wbfm", "am-dsb", "am-ssb",
)  # fmt: skip

#: The 25 classes of the ``all`` set: the RML2016 set first, then the extra ones. The set is
#: fixed (cached sets are keyed by its name); later classes are in BROAD_CLASSES.
ALL_CLASSES: tuple[str, ...] = RML2016_CLASSES + (
    "ook", "4ask", "8ask", "16psk", "32psk", "oqpsk", "32qam", "256qam",
    "16apsk", "32apsk", "gmsk", "4fsk", "ofdm", "lfm",
)  # fmt: skip

#: Generated classes added for the broad pretraining domain: more FSK, AM and FM variants.
BROAD_CLASSES: tuple[str, ...] = (
    "8fsk", "16fsk", "msk", "4msk", "4gfsk", "4gmsk",
    "am-dsb-sc", "am-ssb-wc", "am-ssb-upper", "am-ssb-lower", "nbfm",
)  # fmt: skip

#: Every class the generator can produce (its random streams are keyed by the index here).
GENERATED_CLASSES: tuple[str, ...] = ALL_CLASSES + BROAD_CLASSES

#: 25 classes for a broad backbone: the RML2016 set, then the families other toolchains
#: (TorchSig, RadioML 2018) label, each under the name ``fedsb.io`` maps their labels to.
WIDE25_CLASSES: tuple[str, ...] = RML2016_CLASSES + (
    "ook", "4ask", "8ask", "16psk", "32qam", "256qam", "16apsk",
    "4fsk", "8fsk", "msk", "gmsk", "ofdm", "am-dsb-sc", "lfm",
)  # fmt: skip

#: Named class sets accepted wherever a class list is (``--classes rml2016``).
CLASS_SETS: dict[str, tuple[str, ...]] = {
    "rml2016": RML2016_CLASSES,
    "all": ALL_CLASSES,
    "wide25": WIDE25_CLASSES,
}

#: Other spellings of generated classes that ``resolve_classes`` accepts (the standard name
#: on the left; ``fedsb.io.labels`` maps the same names when it reads files).
CLASS_ALIASES: dict[str, str] = {
    "2fsk": "cpfsk",
    "bfsk": "cpfsk",
    "2gfsk": "gfsk",
    "2msk": "msk",
    "2gmsk": "gmsk",
    "4pam": "pam4",
    "dsb-sc": "am-dsb-sc",
    "fm": "wbfm",
    "wfm": "wbfm",
}

#: Names that exist in other datasets (RadioML 2018, TorchSig), in the order KNOWN_CLASSES
#: has always listed them; some are generated now (BROAD_CLASSES).
_OTHER_NAMES: tuple[str, ...] = (
    "64apsk", "128apsk", "64psk", "128qam", "am-ssb-wc", "am-dsb-sc", "am-ssb-sc",
    "16ask", "32ask", "64ask", "8fsk", "16fsk", "msk", "tone", "chirpss",
    # TorchSig 2.2 classes with no nearer canonical name (added for the io alias table)
    "4gfsk", "8gfsk", "16gfsk", "4msk", "8msk", "16msk", "4gmsk", "8gmsk", "16gmsk",
    "512qam", "1024qam",
)  # fmt: skip

#: Classes that exist in other datasets and that we can name and evaluate on, but that the
#: generator does not produce.
EXTERNAL_CLASSES: tuple[str, ...] = tuple(n for n in _OTHER_NAMES if n not in BROAD_CLASSES)

#: Every canonical name fedsb knows (generated or external), in a fixed order: the names known
#: before the broad classes keep their places, the new ones come last.
KNOWN_CLASSES: tuple[str, ...] = (
    ALL_CLASSES + _OTHER_NAMES + tuple(n for n in BROAD_CLASSES if n not in _OTHER_NAMES)
)


def resolve_classes(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Turn a set name (``rml2016``, ``all``, ``wide25``) or a comma list into generator classes.

    Names in CLASS_ALIASES become their canonical class.
    """
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in CLASS_SETS:
            return CLASS_SETS[key]
        names = [s.strip().lower() for s in key.split(",") if s.strip()]
    else:
        names = [str(s).strip().lower() for s in spec]
    if not names:
        raise ConfigError("classes: empty class list")
    names = [CLASS_ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in GENERATED_CLASSES]
    if unknown:
        raise ConfigError(
            f"classes: unknown class {unknown[0]!r}; choose a set ({', '.join(CLASS_SETS)}) "
            f"or names from: {', '.join(GENERATED_CLASSES)}"
        )
    if len(set(names)) != len(names):
        raise ConfigError("classes: a class is listed twice")
    return tuple(names)
