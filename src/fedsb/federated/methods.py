"""The federated methods, one registry entry each: adding a method is one ``FedMethod`` here.

Everything the server, the clients, the engines, the CLI and the report need to know about a
method is a field of its entry, so no other module compares ``cfg.method`` to a name. The layers
below ``federated`` (``models``, ``training``) never import this: they get the facts they need
(the adapter method string) passed in.

Most methods aggregate the same way (``aggregate.aggregate``: each sent key on its own) and
differ only in what the clients send (``sent``). The LoRA baselines add four facts: the
aggregation function (``aggregate``, a name in ``aggregate.AGGREGATORS``), whether the global
state carries the adapted layers' frozen W0 that the server folds updates into
(``base_weights``), whether the clients draw new LoRA factors every round (``fresh_adapters``)
and which trained tensors never leave a client (``personal``). ``federated.states`` turns them
into what is sent, kept and loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..models.config import ADAPTED_METHODS


@dataclass(frozen=True)
class FedMethod:
    """One federated method: the adapter its clients train and how the server treats it."""

    name: str
    adapter: str  # the models/ adapter method the clients train (adapter.method)
    # fnmatch patterns of the adapter-state keys the clients send each round, besides the head
    # (``head.*``, sent whenever the head trains)
    sent: tuple[str, ...]
    lr_key: str  # the ClientConfig learning-rate field of the adapter tensors (the head: lr)
    style: tuple[str, str]  # plot (colour, marker), the same in every figure
    needs_basis: bool = False  # LoRA-SB's B and A from a round-0 gradient estimate
    pooled: bool = False  # one training unit on the union of the clients' data: nothing sent
    dp: bool = True  # DP-SGD supported (adapter methods; not every weight, not pooled data)
    aggregate: str = "keywise"  # the server's combination: a name in aggregate.AGGREGATORS
    # the global state also carries <layer>.base_layer.weight of every adapted layer (the server
    # folds the aggregated update into W0, so the downlink holds one dense matrix per layer)
    base_weights: bool = False
    fresh_adapters: bool = False  # new LoRA factors every round (A from a round seed, B = 0)
    # fnmatch patterns of trained keys that stay on the client (never sent, kept per client)
    personal: tuple[str, ...] = ()
    robust: bool = True  # server.aggregation median / trimmed-mean allowed (else mean only)
    no_flower: str = ""  # why engine = "flower" cannot run it ("" = it can)

    @property
    def ranked(self) -> bool:
        """Whether ``adapter.rank`` means anything (a low-rank adapter)."""
        return self.adapter in ADAPTED_METHODS

    @property
    def plain(self) -> bool:
        """Whether the global state is exactly the trained tensors, all sent back each round."""
        return not (self.base_weights or self.fresh_adapters or self.personal)

    @property
    def label(self) -> str:
        """The method's display name: its registry name."""
        return self.name


_ENTRIES = (
    FedMethod("fedsb", "lora-sb", ("*.lora_R.weight",), "lr", ("#1f77b4", "o"), needs_basis=True),
    FedMethod("fedit", "lora", ("*.lora_A.weight", "*.lora_B.weight"), "lora_lr", ("#d62728", "s")),
    FedMethod("ffa", "ffa-lora", ("*.lora_B.weight",), "lora_lr", ("#2ca02c", "^")),
    # FedEx-LoRA (Singhal et al. 2025): FedIT's means plus the exact residual
    # mean(B_i A_i) - mean(B) mean(A), folded into W0 (sent down as the updated W0)
    FedMethod(
        "fedex",
        "lora",
        ("*.lora_A.weight", "*.lora_B.weight"),
        "lora_lr",
        ("#ff7f0e", "P"),
        aggregate="fedex-residual",
        base_weights=True,
        robust=False,
    ),
    # FLoRA (Wang et al. 2024): the stacked factors' product sum_i w_i B_i A_i folded into W0;
    # every round starts from new factors, so only W0 (and the head) goes down
    FedMethod(
        "flora",
        "lora",
        ("*.lora_A.weight", "*.lora_B.weight"),
        "lora_lr",
        ("#e377c2", "h"),
        aggregate="flora-stack",
        base_weights=True,
        fresh_adapters=True,
        robust=False,
    ),
    # FedSA-LoRA (Guo et al. 2025): A shared (averaged), each client keeps its own B
    FedMethod(
        "fedsa",
        "lora",
        ("*.lora_A.weight",),
        "lora_lr",
        ("#bcbd22", "X"),
        personal=("*.lora_B.weight",),
        no_flower=(
            "each client keeps its own B between rounds; the embedded engine holds them in the "
            "server's checkpoint, which resume and the per-client evaluation read, and a Flower "
            "node would have to send its B to the server for that; use engine = 'local'"
        ),
    ),
    FedMethod("fedavg", "full", ("*",), "full_lr", ("#9467bd", "D"), dp=False),
    FedMethod("head-only", "head-only", (), "lr", ("#8c564b", "v")),
    # the reference: LoRA-SB on the union of every client's training data (same rounds x local
    # epochs, no server); what the one unit trains is fedsb's R
    FedMethod(
        "centralized",
        "lora-sb",
        ("*.lora_R.weight",),
        "lr",
        ("#7f7f7f", "*"),
        needs_basis=True,
        pooled=True,
        dp=False,
    ),
)
METHODS: dict[str, FedMethod] = {m.name: m for m in _ENTRIES}
#: The methods that train on pooled data (the centralized reference), for report look-ups.
POOLED = tuple(m.name for m in _ENTRIES if m.pooled)
OTHER_STYLE = ("#17becf", "x")  # a method the registry does not know (an old run directory)


def method(name: str, key: str = "method") -> FedMethod:
    """The entry of ``name``; ConfigError naming ``key`` for an unknown one."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"{key} {name!r} is not one of {', '.join(METHODS)}") from None


def is_pooled(name: str) -> bool:
    """Whether run records of method ``name`` are the pooled reference (unknown: no)."""
    return name in POOLED


__all__ = ["METHODS", "POOLED", "FedMethod", "is_pooled", "method"]
