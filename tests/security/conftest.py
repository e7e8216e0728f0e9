"""The operator e2e harness (tests/e2e/operator_fixtures.py) for the security tests that run an operator."""

from __future__ import annotations

import sys
from pathlib import Path

_E2E = Path(__file__).resolve().parents[1] / "e2e"
if str(_E2E) not in sys.path:
    sys.path.insert(0, str(_E2E))
