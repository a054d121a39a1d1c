"""Where the commands find the school configuration: --config, RELAY_CONFIG, or the example school."""

from __future__ import annotations

from pathlib import Path

EXAMPLE_CONFIG = Path("deploy/examples/school.yaml")


def example_config() -> Path:
    """The example school: from the working directory in a checkout, else beside the installed package."""
    if EXAMPLE_CONFIG.exists():
        return EXAMPLE_CONFIG
    return Path(__file__).resolve().parents[2] / EXAMPLE_CONFIG


def config_path(given: str | None) -> Path:
    from relay.base.settings import get_settings

    return Path(given or get_settings().config or example_config())
