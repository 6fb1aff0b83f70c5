"""The device is resolved once, at each command's entry, and passed down resolved (issue 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import FAST_EPOCHS, FakeEncoder, write_labelled_jsonl

from semhash.device import is_resolved, resolve_device
from semhash.embed import load_encoder
from semhash.errors import UsageError
from semhash.evaluate import evaluate
from semhash.ingest import IndexOptions, index_paths
from semhash.search import Searcher
from semhash.train import TrainConfig


@pytest.fixture
def devices(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The device every ``load_encoder`` call receives (it returns the fake encoder)."""
    seen: list[str] = []

    def recorder(model: str | None = None, device: str = "cpu", max_windows: int = 0) -> FakeEncoder:
        seen.append(device)
        return FakeEncoder()

    monkeypatch.setattr("semhash.embed.load_encoder", recorder)
    return seen


def test_choices_and_resolved_devices() -> None:
    assert resolve_device("cpu") == "cpu" and resolve_device("CPU") == "cpu"
    assert is_resolved(resolve_device("auto"))
    assert is_resolved("cuda:1") and not is_resolved("auto") and not is_resolved("gpu")
    with pytest.raises(UsageError, match="--device"):
        resolve_device("gpu")


def test_auto_without_a_gpu_driver_is_cpu_without_importing_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    present = tmp_path / "nvidiactl"
    present.touch()
    from semhash.device import no_gpu_driver

    assert no_gpu_driver((tmp_path / "absent",)) == sys.platform.startswith("linux")
    assert not no_gpu_driver((tmp_path / "absent", present))
    # A fresh interpreter on this (driverless) machine: auto is cpu and torch stays unimported.
    child = "import sys; from semhash.device import resolve_device as r; print(r('auto'), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout.split()
    if no_gpu_driver():
        assert out == ["cpu", "False"]
    else:  # a machine with a GPU driver asks torch, as before
        assert out[1] == "True"


def test_load_encoder_takes_only_a_resolved_device() -> None:
    """Resolving is the entry point's job: a choice reaching the loader is a programming error, said clearly."""
    with pytest.raises(ValueError, match="resolved device"):
        load_encoder(device="auto")


def test_index_search_and_eval_pass_a_resolved_device_down(tmp_path: Path, corpus: Path, devices: list[str]) -> None:
    db = tmp_path / "s.db"
    index_paths(db, [corpus], IndexOptions(device="auto", epochs=FAST_EPOCHS))
    with Searcher(db, device="auto") as searcher:
        searcher.query("telescope galaxy")
    data = write_labelled_jsonl(tmp_path / "toy.jsonl", n=40)
    evaluate(data, bits="8", device="auto", cache=tmp_path / "c.npz", train_config=TrainConfig(epochs=1, hidden=32))
    assert len(devices) == 3 and all(d == resolve_device("auto") for d in devices)
