"""No network and no files outside semhash's own: the switches that keep its libraries local (issue 18).

Set once, by :func:`keep_local`, which ``semhash/__init__.py`` calls: importing any ``semhash`` module (the
``semhash`` command, ``semhash serve``, the Python API, the scripts) runs it before onnxruntime, torch,
transformers or Ray can be imported, which matters because these libraries read their switches when they
are imported. What each library did without them (traced with ``strace`` under a fresh ``HOME`` and
``TMPDIR``):

* onnxruntime (1.32's Linux wheel carries Microsoft's 1DS telemetry client): loading an
  ``InferenceSession`` (the exported query encoder) wrote ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/``
  (a ``deviceid`` and an event database) and ``$TMPDIR/.ses``, and from ~9 s on a long-lived process
  (``semhash serve``) looked up ``mobile.events.data.microsoft.com`` on the DNS resolver every few seconds.
  ``ORT_DISABLE_TELEMETRY=1`` before the import stops all of it; ``onnxruntime.disable_telemetry_events()``
  stops neither the files nor the lookups, and the variable set after the import is not read.
* torch: importing ``torch._dynamo`` (transformers does) creates its compile cache folder,
  ``$TMPDIR/torchinductor_<user>``; ``TORCHINDUCTOR_CACHE_DIR`` puts it in semhash's cache
  (``<cache>/torch``; semhash compiles nothing, so it stays empty).
* huggingface_hub / transformers: no lookup was seen with the packaged model, which loads from a local
  folder; offline mode makes sure of it, unless ``SEMHASH_ALLOW_DOWNLOAD`` lets ``--model NAME`` download.
  Their usage telemetry is off either way.
* Ray (``--engine ray``): its usage statistics are off.
* OpenVINO (the ``bf16`` precision): ``import openvino`` imports its conversion tool, whose import sent a usage
  event (a DNS lookup from a forked child) and wrote ``~/intel/``; it has no switch but a consent file, so
  :func:`semhash.runtime.openvino_runner.import_openvino` imports OpenVINO with that tool blocked.

Every switch is a default (``os.environ.setdefault``): a value the user set wins.
"""

from __future__ import annotations

import os
import sys
import warnings

from semhash.config import ENV_ALLOW_DOWNLOAD, cache_root, env_flag

#: Always set: telemetry and usage statistics off.
QUIET: dict[str, str] = {
    "ORT_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}
#: Set unless ``SEMHASH_ALLOW_DOWNLOAD`` allows downloading a model from the Hugging Face hub.
OFFLINE: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
#: torch's compile cache folder, made on import: kept under semhash's cache root.
TORCH_CACHE_VARIABLE = "TORCHINDUCTOR_CACHE_DIR"


def download_allowed() -> bool:
    """Whether ``SEMHASH_ALLOW_DOWNLOAD`` lets semhash download a model (``1``, ``true``, ``yes`` or ``on``)."""
    return env_flag(ENV_ALLOW_DOWNLOAD)


def keep_local() -> None:
    """Set the environment switches that keep every library semhash uses off the network (idempotent).

    Warns when onnxruntime was imported before semhash without ``ORT_DISABLE_TELEMETRY``: its telemetry is
    then on for the whole process, whatever semhash does (import semhash first, or set the variable).
    """
    ort_was_imported = "onnxruntime" in sys.modules and "ORT_DISABLE_TELEMETRY" not in os.environ
    switches = dict(QUIET)
    if not download_allowed():
        switches.update(OFFLINE)
    for name, value in switches.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault(TORCH_CACHE_VARIABLE, str(cache_root() / "torch"))
    if ort_was_imported:
        # Too late for the variable; the API is all that is left (it did not stop the files or the lookups).
        sys.modules["onnxruntime"].disable_telemetry_events()
        warnings.warn(
            "onnxruntime was imported before semhash, so its telemetry could not be turned off in this process: "
            "import semhash first or set ORT_DISABLE_TELEMETRY=1",
            RuntimeWarning,
            stacklevel=2,
        )
