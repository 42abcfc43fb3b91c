"""``GridEngine``: the engine interface of ``server.federate`` over a Flower ``Grid``.

Each sampled client gets one message with only the trained tensors; the reply's tensors and
metrics become a ``ClientResult``. A client that answers with an error, or not within
``server.timeout`` (wall clock of the round's messages), is left out like a crashed or slow
client of the embedded engine. Flower node ids are mapped to our client ids once, by asking
every node for its ``partition-id``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from ...models.lora_sb_init import lora_sb_basis
from ..aggregate import payload_bytes
from ..config import RunConfig
from ..engine_local import init_samples
from ..faults import ClientResult
from ..server import FederatedError
from ..task import Task, has_lora_sb
from .messages import (
    ARRAYS,
    BASIS,
    CACHE_DIR,
    CONFIG,
    METRICS,
    PARTITION_ID,
    STAGE_INIT,
    STAGE_TRAIN,
    State,
    config_text,
    from_record,
    to_record,
)


def one_line(text: str | None, limit: int = 300) -> str:
    """A client's error reason (may hold a traceback) as one short line."""
    flat = re.sub(r"\s+", " ", text or "no reason given").strip()
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class GridEngine:
    """Runs client updates and LoRA-SB's round 0 on Flower nodes."""

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
        self.with_basis: set[int] = set()  # node ids that hold LoRA-SB's basis

    def node_of(self) -> dict[int, int]:
        """Client id -> node id; waits (bounded) until every partition-id has a node."""
        if self.nodes is None:
            self.nodes = self._discover(len(self.task.units))
        return self.nodes

    def _discover(self, n: int) -> dict[int, int]:
        deadline = time.monotonic() + self.connect_timeout
        found: dict[int, int] = {}
        asked: set[int] = set()
        while True:
            new = [i for i in self.grid.get_node_ids() if i not in asked]
            if new:
                queries = [
                    Message(RecordDict(), dst_node_id=i, message_type=MessageType.QUERY)
                    for i in new
                ]
                left = max(1.0, deadline - time.monotonic())
                answered = set()
                for reply in self.grid.send_and_receive(queries, timeout=left):
                    node = reply.metadata.src_node_id
                    if reply.has_error():
                        continue  # asked again on the next pass
                    answered.add(node)
                    pid = int(reply.content[CONFIG][PARTITION_ID])
                    if pid in found and found[pid] != node:
                        raise FederatedError(f"two SuperNodes claim partition-id {pid}")
                    if 0 <= pid < n:
                        found[pid] = node
                asked.update(answered)
            if len(found) == n:
                return found
            if time.monotonic() > deadline:
                missing = sorted(set(range(n)) - set(found))
                raise FederatedError(
                    f"no SuperNode with partition-id {missing} within "
                    f"{self.connect_timeout:g} s ({len(found)} of {n} connected)"
                )
            time.sleep(0.5)

    def _messages(self, stage: str, ids: Iterable[int], extra: dict, arrays=None):
        nodes = self.node_of()
        basis = None
        if stage == STAGE_TRAIN and has_lora_sb(self.task.model):
            basis = to_record(lora_sb_basis(self.task.model))
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
            out.append(Message(content, dst_node_id=node, message_type=MessageType.TRAIN))
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

    def init_gradients(self, ids: list[int]) -> list[State]:
        """Round 0 of LoRA-SB: every listed client's summed gradients (all are required)."""
        extra = {"samples": init_samples(self.cfg, len(ids)), "server-round": 0}
        answers = self._exchange(self._messages(STAGE_INIT, ids, extra), ids)
        grads = []
        for client, reply, seconds in answers:
            res = self._result(client, reply, seconds)
            if res.error is not None:
                raise FederatedError(f"round 0: client {client}: {res.error}")
            grads.append(res.state)
        return grads

    def train(self, server_round: int, ids: list[int], global_state: State) -> list[ClientResult]:
        arrays = to_record(global_state)
        extra = {"server-round": server_round}
        messages = self._messages(STAGE_TRAIN, ids, extra, arrays)
        return [self._result(*answer) for answer in self._exchange(messages, ids)]

    def close(self) -> None:
        """Nothing to release: the nodes belong to the Flower runtime."""
