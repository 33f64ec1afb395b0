"""Shared fixtures: paths to the sample data and an isolated user cache for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """Return a path under the shared sample data, skipping the test when it is not available."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"sample data {path} is not available")
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Point the weights cache at a temporary folder so tests never touch the user's cache or network."""
    cache = tmp_path_factory.mktemp("spikedeblur-home")
    monkeypatch.setenv("SPIKEDEBLUR_HOME", str(cache))
    monkeypatch.setenv("SPIKEDEBLUR_OFFLINE", "1")
    return cache
