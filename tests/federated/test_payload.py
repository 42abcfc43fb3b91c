"""The training-round payload (``client.payload``): hand-computed quantisation, error feedback,
the checks of a received upload and the bytes each precision really puts on the wire."""

from __future__ import annotations

import json
import re
import struct

import pytest
import torch
from safetensors.torch import save as st_save

from fedsb.config import apply_overrides
from fedsb.errors import ConfigError
from fedsb.federated.aggregate import payload_bytes
from fedsb.federated.config import RunConfig
from fedsb.federated.payload import (
    SCALES,
    broadcast,
    decode,
    decode_update,
    dequantise,
    encode,
    encode_fixed,
    encode_update,
    fixed_kind,
    quantise,
    rebase,
    received_update,
    residuals,
    with_residuals,
    without_residuals,
)
from fedsb.models.state import AdapterStateError


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_int8_quantises_symmetrically_per_tensor_by_hand():
    # max |x| = 31.75 = 127 * 0.25: the scale is exactly 0.25 and the grid is k * 0.25
    q, scale = quantise(_t(31.75, -10.0, 0.1, 0.0, -0.125))
    assert scale.dtype == torch.float32 and float(scale) == 0.25
    assert q.dtype == torch.int8
    assert q.tolist() == [127, -40, 0, 0, 0]  # 0.4 -> 0 and -0.5 -> -0 (round half to even)
    assert dequantise(q, scale).tolist() == [31.75, -10.0, 0.0, 0.0, 0.0]


def test_int8_of_zeros_and_of_non_finite_values():
    q, scale = quantise(torch.zeros(3))
    assert float(scale) == 0.0 and q.tolist() == [0, 0, 0]
    q, scale = quantise(_t(1.0, float("nan")))
    assert scale.isnan() and q.tolist() == [0, 0]  # the server's check refuses the scale
    q, scale = quantise(_t(1.0, float("inf")))
    assert scale.isinf() and q.tolist() == [0, 0]


def test_fp16_is_a_cast_and_fp32_changes_nothing():
    x = {"a": _t(0.1, 1.0, -2.5)}
    half = encode(x, "fp16")
    assert half["a"].dtype == torch.float16
    # 0.1 in binary16: 1638 / 16384 = 0.0999755859375 (the nearest of the 10-bit mantissas)
    assert decode(half, "fp16")["a"].tolist() == [0.0999755859375, 1.0, -2.5]
    assert encode(x, "fp32")["a"] is x["a"] and decode(x, "fp32")["a"] is x["a"]
    sent, received = broadcast(x, "fp32")
    assert sent is x and received is x


def test_int8_upload_carries_the_rounding_into_the_next_round():
    start = {"w": torch.zeros(4)}
    # round 1: delta 0.1 on the last entry is below half a step (0.125) and is rounded away
    wire, e = encode_update({"w": _t(31.75, 0.0, 0.0, 0.1)}, start, {}, "int8", ["w"])
    assert wire["w"].tolist() == [127, 0, 0, 0] and wire[SCALES].tolist() == [0.25]
    assert e["w"].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.1])
    # round 2: the same delta plus the residual, 0.2, is 0.8 of a step: sent as one step
    wire, e = encode_update({"w": _t(31.75, 0.0, 0.0, 0.1)}, start, e, "int8", ["w"])
    assert wire["w"].tolist() == [127, 0, 0, 1]
    assert e["w"].tolist() == pytest.approx([0.0, 0.0, 0.0, -0.05])
    got = decode_update(wire, start, "int8")["w"]
    assert got.tolist() == [31.75, 0.0, 0.0, 0.25]


def test_error_feedback_loses_nothing_over_many_rounds():
    """Sum of what the server decoded + the last residual = sum of the true updates."""
    g = torch.Generator().manual_seed(0)
    start = {"w": torch.randn(6, 5, generator=g), "b": torch.randn(5, generator=g)}
    e: dict[str, torch.Tensor] = {}
    true = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in start.items()}
    got = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in start.items()}
    for _ in range(30):
        step = {k: torch.randn(v.shape, generator=g) * 1e-2 for k, v in start.items()}
        sent = {k: start[k] + step[k] for k in start}
        wire, e = encode_update(sent, start, e, "int8", ["w", "b"])
        back = decode_update(wire, start, "int8")
        for k in start:
            true[k] += (sent[k] - start[k]).double()
            got[k] += (back[k] - start[k]).double()
    for k in start:
        torch.testing.assert_close(got[k] + e[k].double(), true[k], rtol=0, atol=1e-5)
        assert (got[k] - true[k]).abs().max() > 1e-5  # without the residual it would be off


def test_only_the_feedback_keys_keep_a_residual():
    start = {"a": torch.zeros(2), "fresh": torch.zeros(2)}
    sent = {"a": _t(1.0, 0.003), "fresh": _t(1.0, 0.003)}
    _, e = encode_update(sent, start, {"fresh": _t(5.0, 5.0)}, "int8", ["a"])
    assert set(e) == {"a"}
    wire, e = encode_update(sent, start, {}, "fp16", ["a"])
    assert e == {} and wire["a"].dtype == torch.float16


def test_a_non_finite_residual_is_reset_to_zero():
    start = {"a": torch.zeros(3)}
    _, e = encode_update({"a": _t(1.0, float("nan"), 0.0)}, start, {}, "int8", ["a"])
    assert e["a"].tolist() == [0.0, 0.0, 0.0]


def test_a_received_upload_is_checked_before_it_is_decoded():
    start = {"a": torch.zeros(2, 2), "b": torch.zeros(3)}
    good, _ = encode_update({"a": torch.ones(2, 2), "b": _t(1, 2, 3)}, start, {}, "int8")
    state, reason = received_update(good, start, "int8")
    assert reason is None and state["b"].tolist() == pytest.approx([1, 2, 3], abs=0.02)
    cases = {
        "int8 update: missing keys 'payload.scales'": {k: good[k] for k in ("a", "b")},
        r"int8 update: key 'a': dtype torch.float32, expected torch.int8": {
            **good,
            "a": torch.ones(2, 2),
        },
        r"int8 update: key 'payload.scales': shape \(1,\), expected \(2,\)": {
            **good,
            SCALES: _t(1.0),
        },
        r"int8 update: key 'payload.scales': 1 NaN and 0 Inf values": {
            **good,
            SCALES: _t(float("nan"), 1.0),
        },
        "int8 update: unexpected keys 'a.bogus'": {**good, "a.bogus": good["a"]},
    }
    for message, wire in cases.items():
        state, reason = received_update(wire, start, "int8")
        assert state is None and reason is not None
        assert re.fullmatch(message, reason), reason
    with pytest.raises(AdapterStateError, match=r"fp16 update: key 'b': 1 NaN and 0 Inf"):
        decode_update(
            {"a": torch.zeros(2, 2).half(), "b": _t(1, float("nan"), 0).half()}, start, "fp16"
        )


def _data_bytes(blob: bytes) -> int:
    """The size of a safetensors blob without its header (8-byte length + JSON)."""
    (header,) = struct.unpack("<Q", blob[:8])
    json.loads(blob[8 : 8 + header])
    return len(blob) - 8 - header


def test_the_wire_holds_one_byte_a_number_plus_four_per_tensor():
    state = {
        "r": torch.randn(16, 16),
        "head.weight": torch.randn(11, 32),
        "head.bias": torch.randn(11),
    }
    n = sum(v.numel() for v in state.values())
    sizes = {kind: _data_bytes(st_save(encode(state, kind))) for kind in ("fp32", "fp16", "int8")}
    assert sizes == {"fp32": 4 * n, "fp16": 2 * n, "int8": n + 4 * len(state)}
    # and payload_bytes (what the rows count) is the whole blob, header included
    for kind in sizes:
        assert payload_bytes(encode(state, kind)) == len(st_save(encode(state, kind)))


def test_the_downlink_is_absolute_and_the_server_keeps_the_exact_state():
    exact = {"w": _t(31.75, 0.3, -1.0)}
    sent, received = broadcast(exact, "int8")
    assert sent["w"].dtype == torch.int8 and received["w"].tolist() == [31.75, 0.25, -1.0]
    # the clients' mean state moved by +0.5 from what they received: so does the exact state
    aggregated = {"w": received["w"] + 0.5}
    assert rebase(aggregated, received, exact)["w"].tolist() == pytest.approx([32.25, 0.8, -0.5])


def test_residuals_live_beside_the_kept_tensors_under_their_prefix():
    kept = with_residuals({"x.lora_B.weight": torch.ones(1)}, {"x.lora_A.weight": torch.zeros(1)})
    assert set(kept) == {"x.lora_B.weight", "ef.x.lora_A.weight"}
    assert set(residuals(kept)) == {"x.lora_A.weight"}
    assert set(without_residuals(kept)) == {"x.lora_B.weight"}
    assert residuals(None) == {} and without_residuals(None) == {}


def test_client_payload_is_a_config_key():
    cfg = apply_overrides(RunConfig(), ["client.payload=fp32"])  # bare, as on the command line
    assert cfg.client.payload == "fp32" and RunConfig().client.payload == "int8"  # the default
    with pytest.raises(ConfigError, match=r"^client\.payload: 'int4' is not one of 'fp32', "):
        apply_overrides(RunConfig(), ["client.payload=int4"])


def test_power_of_two_scales_reencode_to_the_same_bits():
    """The basis a server re-sends to a newcomer is encoded from the values it decoded."""
    gen = torch.Generator().manual_seed(3)
    values = {f"t{i}": torch.randn(7, 5, generator=gen) * 10.0 ** (i - 3) for i in range(6)}
    values["edge"] = _t(127.0 * 2.0**-5, -1.0, 0.0)  # amax / 127 is itself a power of two
    values["zero"] = torch.zeros(3)
    wire = encode_fixed(values, "int8")
    for i, key in enumerate(sorted(values)):
        scale = float(wire[SCALES][i])
        amax = float(values[key].abs().max())
        if amax == 0:
            assert scale == 0 and not wire[key].any()
            continue
        assert scale == 2.0 ** round(torch.log2(torch.tensor(scale)).item()), key  # a power of 2
        assert amax / 127 <= scale < 2 * amax / 127, key  # the smallest that fits
        assert (values[key] - dequantise(wire[key], wire[SCALES][i])).abs().max() <= scale / 2
    assert float(wire[SCALES][sorted(values).index("edge")]) == 2.0**-5
    again = encode_fixed(decode(wire, "int8"), "int8")
    assert again.keys() == wire.keys() and all(torch.equal(again[k], wire[k]) for k in wire)
    # by hand: max|x| / 127 = 0.00236, so the scale is 2^-8; 0.3 / 2^-8 = 76.8 -> 77
    q, s = quantise(_t(0.3, -0.1), pow2=True)
    assert s.item() == 2.0**-8 and q.tolist() == [77, -26]


def test_the_basis_precision_follows_the_payload_unless_set():
    assert [fixed_kind(k) for k in ("fp32", "fp16", "int8")] == ["fp32", "fp16", "fp16"]
    assert fixed_kind("fp32", "int8") == "int8" and fixed_kind("int8", "fp32") == "fp32"
    cfg = apply_overrides(RunConfig(), ["client.basis_payload=int8"])
    assert cfg.client.basis_kind == "int8" and RunConfig().client.basis_kind == "fp16"
    with pytest.raises(ConfigError, match=r"^client\.basis_payload: 'int4' is not one of 'auto', "):
        apply_overrides(RunConfig(), ["client.basis_payload=int4"])
