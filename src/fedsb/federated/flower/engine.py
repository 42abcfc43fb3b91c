"""``GridEngine``: the ``engines.Engine`` of ``server.federate`` over a Flower ``Grid``.

Each sampled client gets one message with the global state (the trained tensors, and for fedex
and flora the folded W0 of every adapted layer); the reply's tensors and metrics become a
``ClientResult``. A client that answers with an error, or not within
``server.timeout`` (wall clock of the round's messages), is left out like a crashed or slow
client of the embedded engine. Flower node ids are mapped to our client ids once, by asking
every node for its ``partition-id``. ``calibration_stats`` runs one step of federated
temperature scaling (an EVALUATE message per node); a node that fails a step is left out of
the rest of that fit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from logging import WARNING
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid

from ...errors import ConfigError
from ..aggregate import payload_bytes
from ..config import RunConfig
from ..engine_local import init_samples
from ..faults import ClientResult
from ..rounds import basis_wire
from ..server import FederatedError
from ..task import Task, has_lora_sb
from .messages import (
    ARRAYS,
    AT_SITE,
    BASIS,
    CACHE_DIR,
    CALIBRATION_ID,
    CALIBRATION_SUMS,
    CONFIG,
    METRICS,
    NUM_PARTITIONS,
    PARTITION_ID,
    STAGE_CALIBRATE,
    STAGE_INIT,
    STAGE_TRAIN,
    State,
    config_text,
    from_record,
    to_record,
)


def _no_personal(personal: Mapping[int, State] | None) -> None:
    if personal:
        raise ConfigError("engine: 'flower' cannot hand clients their kept tensors (fedsa's B)")


@dataclass(frozen=True)
class NodeInfo:
    """A SuperNode's answer to the partition-id query."""

    node: int  # Flower node id
    pid: int  # its partition-id
    partitions: int | None  # its num-partitions, if it has one
    at_site: bool  # whether it has its own data (data-path)


def _node_info(node: int, conf) -> NodeInfo:
    parts = conf.get(NUM_PARTITIONS)
    return NodeInfo(
        node,
        int(conf[PARTITION_ID]),
        int(parts) if parts is not None else None,
        bool(conf.get(AT_SITE, False)),
    )


def one_line(text: str | None, limit: int = 300) -> str:
    """A client's error reason (may hold a traceback) as one short line."""
    flat = re.sub(r"\s+", " ", text or "no reason given").strip()
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class GridEngine:
    """The ``engines.Engine`` on Flower nodes.

    It asks the nodes for client updates, LoRA-SB's round 0 and the temperature-scaling steps.
    """

    def __init__(
        self,
        grid: Grid,
        task: Task,
        cfg: RunConfig,
        cache_dir: Path | None,
        connect_timeout: float = 120.0,
    ):
        self.grid, self.task, self.cfg = grid, task, cfg
        self.connect_timeout = connect_timeout
        self.base = {
            "run-config": config_text(cfg),
            CACHE_DIR: str(Path(cache_dir).resolve()) if cache_dir else "",
        }
        self.nodes: dict[int, int] | None = None  # client id -> node id
        self.query_errors: dict[int, str] = {}  # node id -> its last error to the query
        self.with_basis: set[int] = set()  # node ids that hold LoRA-SB's basis
        # calibration: the global state the nodes' logits are for, its serial number, the
        # clients holding logits for it and those left out of the fit
        self.calibrating: State | None = None
        self.calibration_id = 0
        self.with_logits: set[int] = set()
        self.left_out: set[int] = set()

    def node_of(self) -> dict[int, int]:
        """Client id -> node id; waits (bounded) until every partition-id has a node."""
        if self.nodes is None:
            n = self.task.n_clients
            found = self.poll_nodes(lambda got: all(i in got for i in range(n)))
            missing = sorted(set(range(n)) - set(found))
            if missing:
                raise FederatedError(self.missing_text(missing, n - len(missing), n))
            at_site = [i for i in range(n) if found[i].at_site]
            if at_site:
                raise FederatedError(
                    f"the SuperNode of partition-id {at_site[0]} holds its own data (data-path) "
                    "but the run was not started with data-at-sites = true"
                )
            self.nodes = {i: found[i].node for i in range(n)}
        return self.nodes

    def missing_text(self, missing: list[int], connected: int, n: int) -> str:
        """Why discovery gave up: the missing partition-ids, and a node's last error if any."""
        text = (
            f"no SuperNode with partition-id {missing} within {self.connect_timeout:g} s "
            f"({connected} of {n} connected)"
        )
        if self.query_errors:
            node, reason = next(iter(self.query_errors.items()))
            text += f"; SuperNode {node} answered: {reason}"
        return text

    def poll_nodes(self, enough: Callable[[dict[int, NodeInfo]], bool]) -> dict[int, NodeInfo]:
        """Partition-id -> what its node said; asks new nodes until ``enough`` or the timeout."""
        deadline = time.monotonic() + self.connect_timeout
        found: dict[int, NodeInfo] = {}
        asked: set[int] = set()
        while True:
            new = [i for i in self.grid.get_node_ids() if i not in asked]
            if new:
                queries = [
                    Message(RecordDict(), dst_node_id=i, message_type=MessageType.QUERY)
                    for i in new
                ]
                left = max(1.0, deadline - time.monotonic())
                for reply in self.grid.send_and_receive(queries, timeout=left):
                    node = reply.metadata.src_node_id
                    if reply.has_error():  # asked again on the next pass
                        self.query_errors[node] = one_line(reply.error.reason)
                        continue
                    asked.add(node)
                    self.query_errors.pop(node, None)
                    info = _node_info(node, reply.content[CONFIG])
                    if info.pid in found and found[info.pid].node != node:
                        raise FederatedError(f"two SuperNodes claim partition-id {info.pid}")
                    found[info.pid] = info
            if enough(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def _messages(
        self,
        stage: str,
        ids: Iterable[int],
        extra: dict,
        arrays: ArrayRecord | None = None,
        kind: str = MessageType.TRAIN,
    ) -> list[Message]:
        nodes = self.node_of()
        basis = None
        if stage != STAGE_INIT and has_lora_sb(self.task.model):
            basis = to_record(basis_wire(self.task, self.cfg.client))
        out = []
        for client in ids:
            node = nodes[client]
            conf = ConfigRecord({**self.base, **extra, "stage": stage, "client": client})
            content = RecordDict({CONFIG: conf})
            if arrays is not None:
                content[ARRAYS] = arrays
            if basis is not None and node not in self.with_basis:
                content[BASIS] = basis
                self.with_basis.add(node)
            out.append(Message(content, dst_node_id=node, message_type=kind))
        return out

    def _exchange(self, messages: list[Message], ids: list[int]):
        """(client, reply or None, seconds) for each id, in order."""
        timeout = self.cfg.server.timeout or None
        start = time.perf_counter()
        received = self.grid.send_and_receive(messages, timeout=timeout)
        replies = {r.metadata.src_node_id: r for r in received}
        seconds = time.perf_counter() - start
        nodes = self.node_of()
        return [(c, replies.get(nodes[c]), seconds) for c in ids]

    def _result(self, client: int, reply: Message | None, seconds: float) -> ClientResult:
        if reply is None:  # it may still be working on the basis message: resend the basis
            self.with_basis.discard(self.node_of()[client])
            timeout = self.cfg.server.timeout
            return ClientResult(client, None, {"seconds": seconds}, f"timed out (> {timeout:g} s)")
        if reply.has_error():
            self.with_basis.discard(reply.metadata.src_node_id)  # resent if the node lost it
            reason = one_line(reply.error.reason)
            return ClientResult(client, None, {"seconds": seconds}, reason)
        state = from_record(reply.content[ARRAYS])
        metrics = dict(reply.content[METRICS])
        return ClientResult(client, state, metrics, None, bytes_up=payload_bytes(state))

    def init_round(self, ids: list[int], stage: str, sent: State) -> list[State]:
        """Round 0 of LoRA-SB: every listed client's reply to ``stage`` (all are required)."""
        extra = {"samples": init_samples(self.cfg, len(ids)), "server-round": 0, "init": stage}
        arrays = to_record(sent) if sent else None
        answers = self._exchange(self._messages(STAGE_INIT, ids, extra, arrays), ids)
        grads = []
        for client, reply, seconds in answers:
            res = self._result(client, reply, seconds)
            if res.error is not None:
                raise FederatedError(f"round 0: client {client}: {res.error}")
            grads.append(res.state)
        return grads

    def train(
        self,
        server_round: int,
        ids: list[int],
        global_state: State,
        personal: Mapping[int, State] | None = None,
    ) -> list[ClientResult]:
        """One round: ``global_state`` to every listed client's node, one answer each.

        ``global_state`` is the broadcast as sent (``payload.broadcast``: fp16 or int8 tensors
        with ``client.payload``), and each answer's ``bytes_up`` is that of the upload as sent.
        Kept tensors (fedsa) are refused: the config refuses such a method on Flower; a node
        keeps its int8 residuals itself (``node.train_round``).
        """
        _no_personal(personal)
        arrays = to_record(global_state)
        extra = {"server-round": server_round}
        messages = self._messages(STAGE_TRAIN, ids, extra, arrays)
        return [self._result(*answer) for answer in self._exchange(messages, ids)]

    def calibration_stats(
        self,
        ids: list[int],
        global_state: State,
        beta: float,
        personal: Mapping[int, State] | None = None,
    ) -> list[dict]:
        """One temperature-scaling step: each listed client's validation-split sums at ``beta``.

        In ``ids`` order, without the clients left out. The first step for a global state sends
        it; the nodes keep their logits for the steps after.
        """
        _no_personal(personal)
        if self.calibrating is not global_state:
            self.calibrating, self.with_logits, self.left_out = global_state, set(), set()
            self.calibration_id += 1
        ask = [c for c in ids if c not in self.left_out]
        extra = {"beta": float(beta), CALIBRATION_ID: self.calibration_id}
        fresh = [c for c in ask if c not in self.with_logits]
        known = [c for c in ask if c in self.with_logits]
        kind = MessageType.EVALUATE
        messages = self._messages(STAGE_CALIBRATE, fresh, extra, to_record(global_state), kind)
        messages += self._messages(STAGE_CALIBRATE, known, extra, None, kind)
        sums = {}
        for client, reply, _ in self._exchange(messages, fresh + known):
            if reply is None or reply.has_error():
                if reply is not None:
                    self.with_basis.discard(reply.metadata.src_node_id)
                reason = one_line(reply.error.reason) if reply is not None else "timed out"
                log(WARNING, "fedsb: calibration: client %d left out: %s", client, reason)
                self.left_out.add(client)
                continue
            self.with_logits.add(client)
            sums[client] = {k: float(reply.content[METRICS][k]) for k in CALIBRATION_SUMS}
        if not sums:
            raise FederatedError(f"calibration: no client answered at beta={beta:g}")
        return [sums[c] for c in ask if c in sums]

    def close(self) -> None:
        """Nothing to release: the nodes belong to the Flower runtime."""
