"""Rewrite the golden files from the current templates: run after an intended change."""

from pathlib import Path

from components.rendering import render_gateway_config
from tests.test_rendering import gateway

(Path(__file__).parent / "golden" / "nginx-4-workers.conf").write_text(
    render_gateway_config(gateway(4))
)
