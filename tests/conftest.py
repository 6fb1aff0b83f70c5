"""Shared fixtures: the session's encoder-export cache, a fake encoder, a small corpus on disk.

Plain helpers (the fake encoder class, corpus writers, ``deadline``) are in ``support.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import E0, FakeEncoder, make_store, unit, write_corpus


@pytest.fixture(scope="session", autouse=True)
def runtime_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One encoder-export cache for the whole session (``SEMHASH_CACHE``).

    The real model is exported once, and never into the user's ``~/.cache``.

    ``SEMHASH_INDEX_EXPORT=0`` (the default, made explicit against a developer's environment): a first index
    embeds with the encoder it loads (the tests' fake one, patched into ``semhash.embed.load_encoder``), not
    with the real model's cached export; the tests of that path (tests/test_codec.py) turn it on.
    ``SEMHASH_PRECISION=fp32`` likewise: a new index's default precision (int8 on a CPU) would embed with the
    real model's int8 export instead of the fake; tests/test_precision.py asks for int8 where it means to.
    """
    folder = tmp_path_factory.mktemp("semhash-cache")
    saved = {name: os.environ.get(name) for name in ("SEMHASH_CACHE", "SEMHASH_INDEX_EXPORT", "SEMHASH_PRECISION")}
    os.environ["SEMHASH_CACHE"] = str(folder)
    os.environ["SEMHASH_INDEX_EXPORT"] = "0"
    os.environ["SEMHASH_PRECISION"] = "fp32"
    yield folder
    for name, before in saved.items():
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    write_corpus(root)
    return root


@pytest.fixture
def patch_encoder(monkeypatch: pytest.MonkeyPatch) -> FakeEncoder:
    """Make every ``load_encoder`` call (CLI included) return one shared fake encoder."""
    encoder = FakeEncoder()
    monkeypatch.setattr("semhash.embed.load_encoder", lambda *args, **kwargs: encoder)
    return encoder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` need CUDA; without a GPU they are skipped, never failed."""
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch sees none)")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture
def seven_docs_db(tmp_path: Path) -> Path:
    """Seven documents: an exact pair, a near pair, a chain, a far twin and a loner."""
    path = tmp_path / "d.db"
    make_store(
        path,
        [
            ("The quick brown fox.", E0, 0b0000),  # 0
            ("the  QUICK brown\nfox.", E0, 0b0000),  # 1: exact twin of 0 (normalised)
            ("A slow green turtle crosses the road in 1998.", unit(10, 2), 0xF000),  # 2
            ("A slow green turtle crossed the busy road in 1998!", unit(14, 2), 0xF001),  # 3: near 2 (1 bit)
            ("Completely unrelated text about cooking pasta.", unit(90, 3), 0x0FF0),  # 4: far in codes
            ("Another turtle text", unit(40, 2), 0xF003),  # 5: cos 0.77 with 3, 2 bits away
            ("A copy of the fox far away in code space", E0, 0xFFFFFF00),  # 6: cos 1, 24 bits away
        ],
        tmp_path / "docs",
    )
    return path


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """A local 2-CPU Ray session for one test module (skipped without the Ray extra)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()
