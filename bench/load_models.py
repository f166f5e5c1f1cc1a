"""Benchmark: cold and warm load times of the two packaged models, and peak memory.

    python bench/load_models.py

Each measurement runs in a fresh Python process (so "cold" really is cold and peak
memory is that load's own). Cold SmolLM2 = GGUF dequantization + conversion into an
empty cache folder; warm = loading the cached safetensors. Prints a table and the
cold/warm ratios, all measured in this one run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from finetune_utils import models
# Python imports (paid once per process, whatever is loaded) are timed apart from the load.
import torch, transformers
from transformers.models.bert import modeling_bert
from transformers.models.llama import modeling_llama
imports = time.perf_counter() - t0
which = sys.argv[1]
t0 = time.perf_counter()
if which == "encoder":
    models.load_encoder()
else:
    models.load_causal_lm()
load = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
print(json.dumps({"imports_s": imports, "load_s": load, "peak_gb": peak}))
"""


def measure(which: str, cache: str) -> dict:
    env = {"FINETUNE_UTILS_CACHE": cache, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    import os

    out = subprocess.run(
        [sys.executable, "-c", CHILD, which],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    cache = tempfile.mkdtemp(prefix="bench-cache-")
    rows = {
        "encoder, first load": measure("encoder", cache),
        "encoder, second load": measure("encoder", cache),
        "SmolLM2, cold (convert GGUF)": measure("causal_lm", cache),
        "SmolLM2, warm (cached safetensors)": measure("causal_lm", cache),
    }
    print(f"{'load':<36} {'imports':>8} {'load':>8} {'peak RSS':>9}")
    for name, r in rows.items():
        print(f"{name:<36} {r['imports_s']:>7.2f}s {r['load_s']:>7.2f}s {r['peak_gb']:>8.2f}G")
    cold, warm = rows["SmolLM2, cold (convert GGUF)"], rows["SmolLM2, warm (cached safetensors)"]
    enc1, enc2 = rows["encoder, first load"], rows["encoder, second load"]
    print(f"\nSmolLM2 cold/warm load time ratio: {cold['load_s'] / warm['load_s']:.0f}x")
    print(f"SmolLM2 cold/warm peak memory ratio: {cold['peak_gb'] / warm['peak_gb']:.1f}x")
    print(f"encoder first/second load time ratio: {enc1['load_s'] / enc2['load_s']:.1f}x (no conversion: OS file cache only)")
    import shutil

    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
