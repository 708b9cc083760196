# SPDX-License-Identifier: Apache-2.0
"""Module matrix row set against softhsm-direct (tests/modules/matrix.py; docs/modules.md)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from matrix import run_module  # noqa: E402

if __name__ == "__main__":
    run_module("softhsm-direct")
