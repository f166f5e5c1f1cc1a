"""The whole series' runtime and memory, notebook by notebook.

    python bench/notebooks.py [solutions/03_*.ipynb ...]

Executes every lesson headless (``tools/run_all.py``) and prints, per notebook, the
wall time, the kernel's CPU time and peak memory (RSS) against the budget the notebook
declares in its metadata, with totals for the series. Run it on an otherwise idle
machine: other programs on the same cores inflate the wall times.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import run_all  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_all.main(sys.argv[1:]))
