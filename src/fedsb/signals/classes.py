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

#: Every class the generator can produce: the RML2016 set first, then the extra ones.
ALL_CLASSES: tuple[str, ...] = RML2016_CLASSES + (
    "ook", "4ask", "8ask", "16psk", "32psk", "oqpsk", "32qam", "256qam",
    "16apsk", "32apsk", "gmsk", "4fsk", "ofdm", "lfm",
)  # fmt: skip

#: Named class sets accepted wherever a class list is (``--classes rml2016``).
CLASS_SETS: dict[str, tuple[str, ...]] = {"rml2016": RML2016_CLASSES, "all": ALL_CLASSES}

#: Classes that exist in other datasets (RadioML 2018, TorchSig) and that we can name and
#: evaluate on, but that the generator does not produce.
EXTERNAL_CLASSES: tuple[str, ...] = (
    "64apsk", "128apsk", "64psk", "128qam", "am-ssb-wc", "am-dsb-sc", "am-ssb-sc",
    "16ask", "32ask", "64ask", "8fsk", "16fsk", "msk", "tone", "chirpss",
    # TorchSig 2.2 classes with no nearer canonical name (added for the io alias table)
    "4gfsk", "8gfsk", "16gfsk", "4msk", "8msk", "16msk", "4gmsk", "8gmsk", "16gmsk",
    "512qam", "1024qam",
)  # fmt: skip

#: Every canonical name fedsb knows (generated or external), in a fixed order.
KNOWN_CLASSES: tuple[str, ...] = ALL_CLASSES + EXTERNAL_CLASSES


def resolve_classes(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Turn a set name (``rml2016``, ``all``) or a comma-separated list into generator classes."""
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in CLASS_SETS:
            return CLASS_SETS[key]
        names = [s.strip().lower() for s in key.split(",") if s.strip()]
    else:
        names = [str(s).strip().lower() for s in spec]
    if not names:
        raise ConfigError("classes: empty class list")
    unknown = [n for n in names if n not in ALL_CLASSES]
    if unknown:
        raise ConfigError(
            f"classes: unknown class {unknown[0]!r}; choose a set ({', '.join(CLASS_SETS)}) "
            f"or names from: {', '.join(ALL_CLASSES)}"
        )
    if len(set(names)) != len(names):
        raise ConfigError("classes: a class is listed twice")
    return tuple(names)
