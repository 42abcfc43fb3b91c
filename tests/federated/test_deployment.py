"""The Flower Deployment Engine with TLS and SuperNode authentication, on localhost.

Certificates and keys come from the functions of ``scripts/flower_local_deployment.sh``
(sourced, not run); the SuperLink and SuperNodes are the venv's Flower binaries, each in its
own process group, stopped in a ``finally``. Every wait is bounded; ports are picked free.

The end-to-end run of the script (2 SuperNodes, 1 round) takes 60-100 s on two busy cores,
so it runs only with ``FEDSB_FLOWER_E2E=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "flower_local_deployment.sh"
BIN = Path(sys.executable).parent
CONNECTION = "local-deployment"  # FLOWER_CONNECTION of the script
EXES = ("flower-superlink", "flower-supernode", "flwr")


def _missing() -> str | None:
    for tool in ("bash", "openssl", "setsid"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    for exe in EXES:
        if not (BIN / exe).exists():
            return f"{BIN / exe} not found (flwr not installed in this environment)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def script_fn(*call: str, env: dict[str, str], timeout: float = 60) -> None:
    """Run one function of the deployment script (``source`` it, then call)."""
    cmd = f'source "{SCRIPT}" && ' + " ".join(f"'{c}'" for c in call)
    subprocess.run(["bash", "-c", cmd], env=env, check=True, timeout=timeout, capture_output=True)


@dataclass
class Deployment:
    """A TLS + SuperNode-auth SuperLink and the processes started against it."""

    work: Path
    port: int
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.work / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.work,
            start_new_session=True,  # its own process group: children are stopped with it
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.work / f"{name}.log").read_text(errors="replace")

    def flwr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "flwr"), *args],
            env=self.env,
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def key(self, name: str) -> Path:
        script_fn("gen_node_key", str(self.work / "keys"), name, env=self.env)
        return self.work / "keys" / name

    def register(self, key: Path) -> None:
        done = self.flwr("supernode", "register", f"{key}.pub", CONNECTION)
        assert done.returncode == 0, done.stdout + done.stderr

    def supernode(self, name: str, key: Path, partition: int) -> subprocess.Popen:
        return self.spawn(
            name,
            str(BIN / "flower-supernode"),
            "--root-certificates",
            str(self.work / "certs" / "ca.crt"),
            "--superlink",
            f"127.0.0.1:{self.port}",
            "--auth-supernode-private-key",
            str(key),
            "--port",
            str(free_port()),
            "--max-wait-time",
            "30",
            "--node-config",
            f"partition-id={partition}",
        )

    def nodes(self) -> list[dict]:
        done = self.flwr("supernode", "list", CONNECTION, "--format", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout).get("nodes", [])

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # the group may hold children (flower-superexec) after the leader is gone
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)


def wait_for(condition, seconds: float, what: str, step: float = 0.5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")


@pytest.fixture
def deployment(tmp_path) -> Iterator[Deployment]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "VENV_BIN": str(BIN),
        "FLWR_HOME": str(tmp_path / "flwr-home"),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    }
    port = free_port()
    dep = Deployment(tmp_path, port, env)
    certs = tmp_path / "certs"
    script_fn("gen_certs", str(certs), env=env)
    script_fn(
        "write_connection", env["FLWR_HOME"], f"127.0.0.1:{port}", str(certs / "ca.crt"), env=env
    )
    try:
        link = dep.spawn(
            "superlink",
            str(BIN / "flower-superlink"),
            "--ssl-ca-certfile",
            str(certs / "ca.crt"),
            "--ssl-certfile",
            str(certs / "server.pem"),
            "--ssl-keyfile",
            str(certs / "server.key"),
            "--enable-supernode-auth",
            "--disable-runtime-dependency-installation",
            "--port",
            str(port),
        )
        wait_for(lambda: port_open(port) or link.poll() is not None, 40, "the SuperLink to listen")
        assert link.poll() is None, dep.log("superlink")
        yield dep
    finally:
        dep.stop()


def test_supernode_auth_refuses_unregistered_key(deployment):
    dep = deployment
    good, bad = dep.key("good"), dep.key("bad")
    dep.register(good)  # only the good key
    good_proc = dep.supernode("supernode-good", good, 0)
    bad_proc = dep.supernode("supernode-bad", bad, 1)

    code = wait_for(
        lambda: bad_proc.poll() is not None and (bad_proc.returncode,),
        45,
        "the unregistered SuperNode to exit",
    )[0]
    log = dep.log("supernode-bad")
    assert code != 0, log  # flwr 1.41: exit code 305
    assert "Failed to activate SuperNode" in log, log

    def online() -> list[dict]:
        nodes = dep.nodes()
        return nodes if any(n.get("status") == "online" for n in nodes) else []

    nodes = wait_for(online, 30, "the registered SuperNode to be online", step=1.0)
    assert good_proc.poll() is None, dep.log("supernode-good")
    assert [n["status"] for n in nodes] == ["online"], nodes  # the bad one is not even listed
    bad_pub = (bad.parent / "bad.pub").read_text().split()[1]
    assert bad_pub not in json.dumps(nodes)


def _run_script(
    ws, tmp_path: Path, run_dir: Path, nodes: int, timeout: int, *args: str
) -> tuple[int, str, int]:
    """The deployment script's --demo with ``nodes`` SuperNodes, one round: (code, output, port).

    Free ports for the SuperLink and every SuperNode; the script is stopped (its EXIT trap stops
    what it started) if it outlives ``timeout`` + 140 s.
    """
    port, node_port = free_port(), free_port()
    while any(port_open(node_port + i) or node_port + i == port for i in range(1, nodes)):
        node_port = free_port()
    cmd = ["bash", str(SCRIPT), "--demo", *args, "--set", "rounds=1"]
    cmd += ["--pretrained", str(ws.pre), "--cache-dir", str(ws.cache)]
    cmd += ["--work-dir", str(tmp_path / "work"), "--run-dir", str(run_dir)]
    cmd += ["--port", str(port), "--node-port", str(node_port), "--timeout", str(timeout)]
    env = {**os.environ, "VENV_BIN": str(BIN)}
    with (tmp_path / "script.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            code = proc.wait(timeout=timeout + 140)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    return code, (tmp_path / "script.log").read_text(errors="replace"), port


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("FEDSB_FLOWER_E2E") != "1", reason="60-100 s: set FEDSB_FLOWER_E2E=1"
)
def test_script_runs_a_job_end_to_end(workspace, tmp_path):
    from .conftest import read_rows

    run_dir = tmp_path / "run"
    code, output, port = _run_script(workspace, tmp_path, run_dir, 2, 240, "--nodes", "2")
    assert code == 0, output[-3000:]
    rows = read_rows(run_dir)
    assert [r["stage"] for r in rows] == ["init", "round", "final"]
    assert rows[1]["accepted"] == [0, 1] and rows[1]["dropped"] == {}
    assert not port_open(port), "the SuperLink is still running"


def _script(*args: str, work: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "VENV_BIN": str(BIN)}
    return subprocess.run(
        ["bash", str(SCRIPT), *args, "--work-dir", str(work)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_script_checks_its_data_dirs_before_starting_anything(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    missing = _script("--data-dirs", f"{a},{b}", work=tmp_path / "w")
    assert missing.returncode != 0
    assert f"error: --data-dirs: {a} does not exist" in missing.stderr, missing.stderr
    a.mkdir(), b.mkdir()
    both = _script("--nodes", "3", "--data-dirs", f"{a},{b}", work=tmp_path / "w")
    assert "error: --nodes 3 but 2 --data-dirs (one SuperNode per directory)" in both.stderr
    alone = _script("--test-data", str(a), work=tmp_path / "w")
    assert "error: --test-data needs --data-dirs" in alone.stderr, alone.stderr
    assert not (tmp_path / "w").exists()  # nothing was started (no logs, no certificates)


def _site_dirs(root: Path) -> list[Path]:
    """Three small sites: one npz each (3 classes, 256 samples, 30 records per class)."""
    from fedsb.io import save_records
    from fedsb.signals import GeneratorConfig, generate

    dirs = []
    for i in range(3):
        site = root / f"site{i}"
        site.mkdir(parents=True)
        cfg = GeneratorConfig(length=256, snr_db=(0.0, 20.0))
        save_records(generate(cfg, "bpsk,qpsk,gfsk", 30, 20 + i, workers=0), site / "rec.npz")
        dirs.append(site)
    return dirs


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("FEDSB_FLOWER_E2E") != "1", reason="3-8 min: set FEDSB_FLOWER_E2E=1"
)
def test_script_runs_three_sites_with_their_own_data(workspace, tmp_path):
    from .conftest import read_rows

    dirs = _site_dirs(tmp_path / "sites")
    run_dir = tmp_path / "run"
    sites = ",".join(str(d) for d in dirs)
    code, output, port = _run_script(workspace, tmp_path, run_dir, 3, 400, "--data-dirs", sites)
    assert code == 0, output[-3000:]
    for i, site in enumerate(dirs):
        assert f"SuperNode {i}: data-path {site}" in output
    rows = read_rows(run_dir)
    assert [r["stage"] for r in rows] == ["init", "round", "final"]
    assert all(r["evaluation"] == "federated" and r["evaluated"] == [0, 1, 2] for r in rows)
    assert rows[1]["accepted"] == [0, 1, 2] and rows[-1]["total_evaluation_bytes"] > 0
    assert not (run_dir / "predictions.npz").exists()
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert [c["client"] for c in evaluation["clients"]] == [0, 1, 2]
    assert not port_open(port), "the SuperLink is still running"
