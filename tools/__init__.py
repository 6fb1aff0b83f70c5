"""Developer tools beside the package: set-up (``bootstrap.sh``), the GPU check and its preparation, the screenshot.

Python tools run from the repository root as modules (``python -m tools.gpu_check``).
"""
