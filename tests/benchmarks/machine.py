"""The machine a benchmark ran on, in one line for its result file."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe() -> str:
    """CPU model, core count, GPU (or none), torch version and its thread count."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    threads = torch.get_num_threads()
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, "
            f"{threads} torch thread{'s' if threads != 1 else ''}")
