"""Issue 18: `index`, `query` and `serve` make no network attempt and write nothing outside the index and its cache.

The commands run as the real ``semhash`` command (the packaged model, a tiny corpus) in child processes under
a fresh ``HOME`` and ``TMPDIR``, with every library switch semhash sets removed from their environment, so
what is checked is what semhash does by itself. Two watchers, because neither sees everything:

* ``strace -f`` (connect and send calls of every thread and child process) sees native code: onnxruntime's
  telemetry resolved its collector through libc, which no Python hook sees. Skipped, with the reason,
  where strace is missing or cannot trace (``tools/bootstrap.sh`` installs it with apt where it can).
* A Python audit hook (``sys.addaudithook`` on name lookups, connects and sends) needs no privilege and
  runs everywhere; it sees what Python code does (huggingface_hub, uvicorn, Ray's Python side).

``unshare -n`` was not used: in an empty network namespace an attempt fails quietly instead of being seen.
The files check lists ``HOME``, ``TMPDIR`` and the index's folder before and after; it alone catches
onnxruntime's telemetry (a ``deviceid`` under ``~/.cache/Microsoft``, ``$TMPDIR/.ses``) without strace.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import SMALL_DOCS

ROOT = Path(__file__).resolve().parent.parent
#: How long the server runs after it answered its health check: onnxruntime's telemetry first looked up its
#: collector ~9 s after the query encoder's session was loaded (then every few seconds).
SERVE_SECONDS = 12.0
#: Environment variables that would hide what semhash does by itself (semhash sets some of them; the test
#: process has them from its own import of semhash), removed from the children's environment.
SCRUBBED = (
    "SEMHASH_",
    "HF_",
    "HUGGINGFACE_",
    "TRANSFORMERS_",
    "ORT_",
    "TORCHINDUCTOR_",
    "RAY_",
    "XDG_",
    "DO_NOT_TRACK",
)
SYSCALLS = "connect,sendto,sendmsg,sendmmsg"

# argv[1]: the audit log (one JSON line per name lookup, and per connect or send to an IPv4/IPv6 address).
HOOK = """
import json, sys
log = open(sys.argv[1], "a", buffering=1)
LOOKUPS = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"}
SENDS = {"socket.connect", "socket.sendto", "socket.sendmsg"}
def text(value):
    return value.decode() if isinstance(value, bytes) else "" if value is None else str(value)
def hook(event, args):
    if event in LOOKUPS:
        log.write(json.dumps([event, text(args[0])]) + "\\n")
    elif event in SENDS and isinstance(args[1], tuple) and args[1]:  # AF_INET(6): (host, port, ...)
        log.write(json.dumps([event, text(args[1][0])]) + "\\n")
sys.addaudithook(hook)
"""
# The rest of argv: the semhash command line.
CHILD = (
    HOOK
    + """
sys.argv = ["semhash", *sys.argv[2:]]
from semhash.cli import main
main()
"""
)


@dataclass
class Runs:
    home: Path
    tmp: Path
    index_dir: Path
    db: Path
    audit: list[tuple[str, str]]
    #: strace's output of the three commands; ``None`` where strace cannot run (with why in ``no_strace``).
    strace: str | None
    no_strace: str


def _strace_prefix(out: Path) -> tuple[list[str] | None, str]:
    """The strace command line that traces a child into ``out``, or ``None`` and why not."""
    strace = shutil.which("strace")
    if strace is None:
        return None, "strace is not installed (tools/bootstrap.sh installs it with apt)"
    for fast in (["--seccomp-bpf"], []):  # seccomp-bpf: only the traced calls stop the process (strace >= 5.3)
        prefix = [strace, "-f", "-qq", *fast, "-e", f"trace={SYSCALLS}", "-o"]
        probe = subprocess.run([*prefix, os.devnull, "true"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [*prefix, str(out)], ""
    return None, f"strace cannot trace here: {probe.stderr.strip()[:200]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _is_local(host: str) -> bool:
    """A loopback address or the name ``localhost`` (an empty host: a local bind or lookup)."""
    host = host.split("%")[0]
    if host in ("", "localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a name: resolving it may ask a DNS server
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("privacy")
    home, tmp, corpus, index_dir = (root / n for n in ("home", "tmp", "corpus", "index"))
    for folder in (home, tmp, index_dir):
        folder.mkdir()
    for name, text in SMALL_DOCS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)
    assert _listing(home) == _listing(tmp) == []
    db, audit_log, trace = index_dir / "p.db", root / "audit.jsonl", root / "strace.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env.update(HOME=str(home), TMPDIR=str(tmp), OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), *(
        [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    )]))  # fmt: skip
    traced, no_strace = _strace_prefix(trace)
    traces: list[str] = []

    def command(*args: str) -> list[str]:
        line = [sys.executable, "-c", CHILD, str(audit_log), *args]
        return [*traced, *line] if traced else line

    def collect() -> None:
        if traced:
            traces.append(trace.read_text())

    for args in (
        ("index", str(corpus), "--db", str(db), "--device", "cpu", "--json"),
        ("query", "how do I repair a punctured bike wheel", "--db", str(db), "--json", "-k", "2"),
    ):
        result = subprocess.run(command(*args), env=env, cwd=root, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        collect()
    assert json.loads(result.stdout.splitlines()[0])["path"].endswith("bikes/tyre.txt")

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    with (root / "serve.log").open("w") as log:
        server = subprocess.Popen(
            command("serve", "--db", str(db), "--port", str(port), "--device", "cpu"),
            env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, (root / "serve.log").read_text()
                try:
                    with opener.open(f"{base}/api/health", timeout=5):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "semhash serve did not answer in 120 s"
                    time.sleep(0.3)
            ready = time.monotonic()
            with opener.open(f"{base}/api/query?q=telescope+moon&k=2", timeout=60) as response:
                assert json.loads(response.read())["hits"]
            time.sleep(max(0.0, SERVE_SECONDS - (time.monotonic() - ready)))
        finally:
            os.killpg(server.pid, signal.SIGINT)  # uvicorn stops cleanly; strace (-o FILE) ignores it
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    collect()
    audit = [(str(event), str(host)) for event, host in map(json.loads, audit_log.read_text().splitlines())]
    return Runs(home, tmp, index_dir, db, audit, "\n".join(traces) if traced else None, no_strace)


def _outside(trace: str) -> list[str]:
    """The traced calls (strace lines) that name an IPv4 or IPv6 address other than loopback."""
    calls = [line for line in trace.splitlines() if re.match(rf"\d+\s+({SYSCALLS.replace(',', '|')})\(", line)]
    return [
        line
        for line in calls
        if any(
            not _is_local(v4 or v6)
            for v4, v6 in re.findall(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"', line)
        )
    ]


def test_the_trace_reader_finds_what_onnxruntime_did() -> None:
    trace = "\n".join(
        [  # strace's lines; the first two as it traced `semhash serve` before the fix (0583408)
            '6488  connect(17, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0',
            '6488  sendto(17, "\\6B\\1\\0\\0\\1\\0\\0\\0\\0\\0\\0\\6mobile\\6events"..., 50, MSG_NOSIGNAL, NULL, 0) '
            "= 50",
            "6487  connect(18, {sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), "
            'inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28 <unfinished ...>',
            '6422  connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
            '6422  connect(14, {sa_family=AF_INET, sin_port=htons(8765), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
            "6422  connect(15, {sa_family=AF_INET6, sin6_port=htons(8765), sin6_flowinfo=htonl(0), "
            'inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
            '6422  recvfrom(17, "", 1024, 0, {sa_family=AF_INET, sin_addr=inet_addr("10.0.0.1")}, [16]) = 0',
        ]
    )
    outside = _outside(trace)
    assert [line.split()[1][:10] for line in outside] == ["connect(17", "connect(18"]


@pytest.mark.slow
def test_no_connection_or_lookup_leaves_loopback_in_native_code(runs: Runs) -> None:
    if runs.strace is None:
        pytest.skip(runs.no_strace)
    outside = _outside(runs.strace)
    assert outside == [], "network attempts:\n" + "\n".join(outside[:20])


def test_the_audit_hook_sees_lookups_and_connects(tmp_path: Path) -> None:
    probe = """
import socket
socket.getaddrinfo("localhost", 80)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    try:
        s.connect(("192.0.2.1", 9))  # a UDP connect sends nothing; 192.0.2.0/24 is for documentation
    except OSError:
        pass
"""
    log = tmp_path / "audit.jsonl"
    subprocess.run([sys.executable, "-c", HOOK + probe, str(log)], check=True, timeout=60)
    seen = [tuple(json.loads(line)) for line in log.read_text().splitlines()]
    assert ("socket.getaddrinfo", "localhost") in seen and ("socket.connect", "192.0.2.1") in seen
    assert [host for _, host in seen if not _is_local(host)] == ["192.0.2.1"]


@pytest.mark.slow
def test_python_never_resolves_or_connects_off_loopback(runs: Runs) -> None:
    outside = [(event, host) for event, host in runs.audit if not _is_local(host)]
    assert outside == []


@pytest.mark.slow
def test_nothing_is_written_outside_the_index_and_its_cache(runs: Runs) -> None:
    home = _listing(runs.home)
    allowed = {".cache", ".cache/semhash"}
    assert [p for p in home if p not in allowed and not p.startswith(".cache/semhash/")] == []
    assert _listing(runs.tmp) == []
    name = runs.db.name
    assert [
        p for p in _listing(runs.index_dir) if p.split("/")[0] != name and not p.startswith((f"{name}.", f"{name}-"))
    ] == []


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No switch set; every one keep_local sets is put back as it was after the test."""
    from semhash.privacy import OFFLINE, QUIET, TORCH_CACHE_VARIABLE

    for name in {*os.environ, *QUIET, *OFFLINE, TORCH_CACHE_VARIABLE}:
        if name.startswith(SCRUBBED):
            monkeypatch.setenv(name, "")  # recorded, so that teardown restores (or removes) it
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


def test_keep_local_sets_defaults_and_leaves_the_users_values(bare_environment: pytest.MonkeyPatch) -> None:
    from semhash.privacy import keep_local

    bare_environment.setenv("RAY_USAGE_STATS_ENABLED", "1")
    keep_local()
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1" and os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "1"  # the user's choice
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(Path.home() / ".cache" / "semhash" / "torch")


def test_keep_local_stays_online_when_downloads_are_allowed(bare_environment: pytest.MonkeyPatch) -> None:
    from semhash.privacy import keep_local

    bare_environment.setenv("SEMHASH_ALLOW_DOWNLOAD", "1")
    keep_local()
    assert "HF_HUB_OFFLINE" not in os.environ and "TRANSFORMERS_OFFLINE" not in os.environ
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"


def test_keep_local_warns_when_onnxruntime_came_first(bare_environment: pytest.MonkeyPatch) -> None:
    from semhash.privacy import keep_local

    calls: list[str] = []

    class FakeOnnxruntime:
        @staticmethod
        def disable_telemetry_events() -> None:
            calls.append("disabled")

    bare_environment.setitem(sys.modules, "onnxruntime", FakeOnnxruntime())
    with pytest.warns(RuntimeWarning, match="imported before semhash"):
        keep_local()
    assert calls == ["disabled"]


@pytest.mark.slow
def test_openvino_is_imported_without_its_telemetry(tmp_path: Path) -> None:
    """``import openvino`` alone sends a usage event (a DNS lookup from a forked child, on a fresh machine).

    semhash imports it with the conversion tool that sends it blocked: traced, no address off loopback, and
    nothing in ``HOME`` (no ``~/intel/openvino_telemetry``) but semhash's own cache.
    """
    home, trace = tmp_path / "home", tmp_path / "strace.txt"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env.update(HOME=str(home), TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT))
    child = (
        "import sys, time\n"
        "from semhash.runtime.openvino_runner import import_openvino\n"
        "ov = import_openvino()\n"
        "assert 'openvino.tools.ovc' not in sys.modules and not hasattr(ov, 'convert_model')\n"
        "ov.Core().available_devices\n"
        "time.sleep(1)\n"  # the event went out from a thread started by the import: give it time to show
    )
    traced, no_strace = _strace_prefix(trace)
    result = subprocess.run([*(traced or []), sys.executable, "-c", child], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert [p for p in _listing(home) if not p.startswith(".cache")] == []
    if traced is None:
        pytest.skip(no_strace)
    assert _outside(trace.read_text()) == []
