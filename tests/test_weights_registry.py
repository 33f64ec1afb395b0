"""Weights records, the registry, the cache folder, offline mode, hash records and ``resolve_weights``."""

from __future__ import annotations

import functools
import io
import json

import pytest
import torch
from loopback_server import LoopbackServer
from safetensors.torch import save_file
from typer.testing import CliRunner

from spikedeblur.cli import app
from spikedeblur.models.vrt_checkpoint import random_vrt_state_dict
from spikedeblur.models.vrt_config import get_vrt_config
from spikedeblur.errors import CheckpointError, DownloadError, InputNotFoundError, InvalidInputError
from spikedeblur.weights import (
    DEFAULT,
    REGISTRY,
    WeightsCache,
    WeightsRecord,
    WeightsRegistry,
    ensure_cached,
    file_sha256,
    get_record,
    is_offline,
    list_records,
    resolve_cache_dir,
    resolve_weights,
    weights_status,
)
from spikedeblur.weights import resolve as resolve_module

runner = CliRunner()


@functools.cache
def _tiny_vrt_state_dict() -> dict[str, torch.Tensor]:
    return random_vrt_state_dict(get_vrt_config("vrt-tiny"), seed=0)


@functools.cache
def _vrt_checkpoint(variant: int) -> bytes:
    """Serialize a complete ``vrt-tiny`` checkpoint laid out like VRT's releases; variants differ in one bias."""
    state_dict = dict(_tiny_vrt_state_dict())
    state_dict["conv_first.bias"] = state_dict["conv_first.bias"] + variant
    buffer = io.BytesIO()
    torch.save({"params": state_dict}, buffer)
    return buffer.getvalue()


def _record(server: LoopbackServer, name: str = "test-vrt", **overrides) -> WeightsRecord:
    fields = {
        "name": name,
        "file_name": f"{name}.pth",
        "format": "vrt-pth",
        "preset": "vrt-tiny",
        "description": "test record",
        "licence": "CC-BY-NC-4.0",
        "urls": (server.url(f"/{name}.pth"),),
        "size": 1000,
        "size_exact": False,
    }
    fields.update(overrides)
    return WeightsRecord(**fields)


@pytest.fixture
def server():
    with LoopbackServer() as running:
        running.state.files["/test-vrt.pth"] = _vrt_checkpoint(variant=0)
        yield running


@pytest.fixture
def registered(server):
    """A record served by the loopback server, registered globally for the duration of the test."""
    record = REGISTRY.register(_record(server))
    yield record
    REGISTRY.unregister(record.name)


# --- records and registry ---


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"name": "Bad Name"}, "lower case"),
        ({"file_name": "../escape.pth"}, "plain file name"),
        ({"format": "onnx"}, "format"),
        ({"urls": ("ftp://host/w.pth",)}, "https://"),
        ({"urls": (), "packaged": None}, "at least one URL"),
        ({"size": 0}, "positive"),
        ({"sha256": "ABC"}, "64 lower-case hex"),
        ({"packaged": "../outside.safetensors"}, "relative"),
    ],
)
def test_record_rejects_invalid_fields(override, message):
    fields = {
        "name": "ok",
        "file_name": "ok.pth",
        "format": "vrt-pth",
        "preset": "vrt-deblur",
        "description": "d",
        "licence": "MIT",
        "urls": ("https://example.org/ok.pth",),
        "size": 1,
    }
    fields.update(override)

    with pytest.raises(ValueError, match=message):
        WeightsRecord(**fields)


def test_registry_rejects_duplicate_names(server):
    registry = WeightsRegistry()
    registry.register(_record(server))

    with pytest.raises(ValueError, match="already registered"):
        registry.register(_record(server, description="another"))


def test_unknown_name_lists_known_names():
    with pytest.raises(InvalidInputError, match="known names: vrt-deblur-dvd, vrt-deblur-gopro"):
        get_record("vrt-deblur-imaginary")


def test_builtin_vrt_records_point_at_release():
    names = [record.name for record in list_records()]
    vrt_records = [record for record in list_records() if record.format == "vrt-pth"]

    assert DEFAULT in names
    assert {"vrt-deblur-dvd", "vrt-deblur-gopro", "vrt-deblur-reds"} <= set(names)
    for record in vrt_records:
        assert record.urls[0] == f"https://github.com/JingyunLiang/VRT/releases/download/v0.0/{record.file_name}"
        assert record.licence == "CC-BY-NC-4.0"
        assert record.preset == "vrt-deblur"
        assert record.sha256 is None


# --- cache folder and offline switch ---


def test_cache_dir_argument_wins(tmp_path):
    assert resolve_cache_dir(tmp_path / "mine") == tmp_path / "mine"


def test_cache_dir_from_home_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEDEBLUR_HOME", str(tmp_path))

    assert resolve_cache_dir() == tmp_path / "weights"


def test_cache_dir_defaults_to_user_cache(monkeypatch):
    import platformdirs

    monkeypatch.delenv("SPIKEDEBLUR_HOME")

    assert resolve_cache_dir() == platformdirs.user_cache_path("spikedeblur", appauthor=False) / "weights"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("TRUE", True), ("0", False), ("", False)])
def test_offline_env_values(monkeypatch, value, expected):
    monkeypatch.setenv("SPIKEDEBLUR_OFFLINE", value)

    assert is_offline() is expected
    assert is_offline(not expected) is (not expected)


def test_offline_env_rejects_other_words(monkeypatch):
    monkeypatch.setenv("SPIKEDEBLUR_OFFLINE", "maybe")

    with pytest.raises(InvalidInputError, match="SPIKEDEBLUR_OFFLINE"):
        is_offline()


# --- download into the cache, hash records, verification ---


def test_offline_missing_file_names_path(server, tmp_path):
    record = _record(server)

    with pytest.raises(DownloadError) as caught:
        ensure_cached(record, cache_dir=tmp_path, offline=True)

    message = str(caught.value)
    assert str(tmp_path / "test-vrt.pth") in message
    assert record.urls[0] in message
    assert "offline" in message
    assert server.state.requests == []


def test_first_download_records_hash(server, tmp_path):
    record = _record(server)

    path = ensure_cached(record, cache_dir=tmp_path, offline=False)

    recorded = json.loads((tmp_path / "hashes.json").read_text())
    assert path == tmp_path / "test-vrt.pth"
    assert recorded["test-vrt"]["sha256"] == file_sha256(path)
    assert recorded["test-vrt"]["size"] == path.stat().st_size
    assert weights_status(record, cache_dir=tmp_path).state == "verified"


def test_cached_file_is_used_without_network(server, tmp_path):
    record = _record(server)
    ensure_cached(record, cache_dir=tmp_path, offline=False)
    server.state.requests.clear()

    path = ensure_cached(record, cache_dir=tmp_path, offline=True)

    assert path.is_file()
    assert server.state.requests == []


def test_tampered_cache_file_fails_recorded_hash(server, tmp_path):
    record = _record(server)
    path = ensure_cached(record, cache_dir=tmp_path, offline=False)
    path.write_bytes(_vrt_checkpoint(variant=1))

    with pytest.raises(CheckpointError, match="recorded on first download") as caught:
        ensure_cached(record, cache_dir=tmp_path, offline=True)

    assert "--force" in str(caught.value)
    assert weights_status(record, cache_dir=tmp_path).state == "corrupt"


def test_redownload_checked_against_recorded_hash(server, tmp_path):
    record = _record(server)
    ensure_cached(record, cache_dir=tmp_path, offline=False).unlink()
    server.state.files["/test-vrt.pth"] = _vrt_checkpoint(variant=2)

    with pytest.raises(DownloadError, match="SHA-256 is"):
        ensure_cached(record, cache_dir=tmp_path, offline=False)

    assert not (tmp_path / "test-vrt.pth").exists()
    assert not (tmp_path / "test-vrt.pth.part").exists()


def test_force_downloads_again_and_rerecords(server, tmp_path):
    record = _record(server)
    ensure_cached(record, cache_dir=tmp_path, offline=False)
    replacement = _vrt_checkpoint(variant=3)
    server.state.files["/test-vrt.pth"] = replacement

    path = ensure_cached(record, cache_dir=tmp_path, offline=False, force=True)

    assert path.read_bytes() == replacement
    assert WeightsCache(tmp_path).recorded_hash(record).sha256 == file_sha256(path)


def test_published_hash_mismatch_rejected(server, tmp_path):
    record = _record(server, sha256="f" * 64)

    with pytest.raises(DownloadError, match="expected " + "f" * 64):
        ensure_cached(record, cache_dir=tmp_path, offline=False)

    assert list(tmp_path.glob("test-vrt.pth*")) == []


def test_corrupt_checkpoint_rejected_and_not_kept(server, tmp_path):
    server.state.files["/test-vrt.pth"] = b"<html>not a checkpoint</html>" * 100
    record = _record(server)

    with pytest.raises(DownloadError, match="not a readable PyTorch checkpoint"):
        ensure_cached(record, cache_dir=tmp_path, offline=False)

    assert list(tmp_path.glob("test-vrt.pth*")) == []
    assert WeightsCache(tmp_path).recorded_hash(record) is None


def test_checkpoint_without_params_rejected(server, tmp_path):
    buffer = io.BytesIO()
    torch.save({"something_else": 1}, buffer)
    server.state.files["/test-vrt.pth"] = buffer.getvalue()

    with pytest.raises(DownloadError, match="entry 'something_else' is a int, not a tensor"):
        ensure_cached(_record(server), cache_dir=tmp_path, offline=False)


def test_checkpoint_of_other_preset_rejected(server, tmp_path):
    record = _record(server, preset="vrt-small")

    with pytest.raises(DownloadError, match="is not a vrt-small checkpoint") as caught:
        ensure_cached(record, cache_dir=tmp_path, offline=False)

    assert "shape mismatches" in str(caught.value)
    assert list(tmp_path.glob("test-vrt.pth*")) == []


def test_file_placed_by_hand_is_checked_and_recorded(server, tmp_path):
    record = _record(server)
    (tmp_path / "test-vrt.pth").write_bytes(_vrt_checkpoint(variant=4))

    ensure_cached(record, cache_dir=tmp_path, offline=True)

    assert WeightsCache(tmp_path).recorded_hash(record) is not None
    assert server.state.requests == []


def test_garbage_placed_by_hand_is_rejected(server, tmp_path):
    record = _record(server)
    (tmp_path / "test-vrt.pth").write_bytes(b"garbage")

    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        ensure_cached(record, cache_dir=tmp_path, offline=True)

    assert WeightsCache(tmp_path).recorded_hash(record) is None


def test_mirror_env_serves_before_record_urls(server, tmp_path, monkeypatch):
    server.state.files["/mirror/test-vrt.pth"] = server.state.files["/test-vrt.pth"]
    monkeypatch.setenv("SPIKEDEBLUR_MIRROR", server.url("/mirror"))

    ensure_cached(_record(server), cache_dir=tmp_path, offline=False)

    assert [path for path, _ in server.state.requests] == ["/mirror/test-vrt.pth"]


def test_status_reports_partial_and_missing(server, tmp_path):
    record = _record(server)

    assert weights_status(record, cache_dir=tmp_path).state == "missing"
    (tmp_path / "test-vrt.pth.part").write_bytes(b"half")
    assert weights_status(record, cache_dir=tmp_path).state == "partial"


# --- packaged weights ---


def test_packaged_record_loads_without_network(tmp_path, monkeypatch):
    save_file({"weight": torch.ones(2, 2)}, str(tmp_path / "tiny.safetensors"))
    monkeypatch.setattr(resolve_module, "packaged_root", lambda: tmp_path)
    record = WeightsRecord(
        name="packaged-test",
        file_name="tiny.safetensors",
        format="safetensors",
        preset="vrt-spike-tiny",
        description="d",
        licence="Apache-2.0",
        size=(tmp_path / "tiny.safetensors").stat().st_size,
        sha256=file_sha256(tmp_path / "tiny.safetensors"),
        packaged="tiny.safetensors",
    )

    path = ensure_cached(record, offline=True)

    assert path == tmp_path / "tiny.safetensors"
    assert weights_status(record).state == "packaged"


def test_missing_packaged_file_says_reinstall(tmp_path, monkeypatch):
    monkeypatch.setattr(resolve_module, "packaged_root", lambda: tmp_path)
    record = WeightsRecord(
        name="packaged-missing",
        file_name="gone.safetensors",
        format="safetensors",
        preset="p",
        description="d",
        licence="Apache-2.0",
        size=1,
        packaged="gone.safetensors",
    )

    with pytest.raises(CheckpointError, match="reinstall"):
        ensure_cached(record)


# --- resolve_weights (what run --weights accepts) ---


def test_resolve_passes_local_file_through(tmp_path):
    local = tmp_path / "mine.safetensors"
    local.write_bytes(b"x")

    assert resolve_weights(str(local)) == local
    assert resolve_weights(local) == local


def test_resolve_missing_path_is_not_found(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        resolve_weights(str(tmp_path / "nothing.pth"))


def test_resolve_unknown_word_lists_names():
    with pytest.raises(InvalidInputError, match="known names"):
        resolve_weights("gopro")


def test_resolve_name_downloads_into_home_cache(registered, server, monkeypatch, tmp_path):
    monkeypatch.setenv("SPIKEDEBLUR_HOME", str(tmp_path))

    path = resolve_weights("test-vrt", offline=False)

    assert path == tmp_path / "weights" / "test-vrt.pth"
    assert [request_path for request_path, _ in server.state.requests] == ["/test-vrt.pth"]


def test_resolve_name_respects_offline_env(registered, server):
    with pytest.raises(DownloadError, match="offline mode is on"):
        resolve_weights("test-vrt")

    assert server.state.requests == []


# --- CLI ---


def test_cli_downloads_and_prints_path_and_licence(registered, tmp_path):
    result = runner.invoke(app, ["-q", "download-weights", "test-vrt", "--cache-dir", str(tmp_path), "--online"])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(str(tmp_path / "test-vrt.pth"))
    assert "licence CC-BY-NC-4.0" in result.stderr
    assert (tmp_path / "test-vrt.pth").is_file()


def test_cli_list_json_shows_state(registered, tmp_path):
    runner.invoke(app, ["-q", "download-weights", "test-vrt", "--cache-dir", str(tmp_path), "--online"])

    result = runner.invoke(app, ["download-weights", "--list", "--json", "--cache-dir", str(tmp_path)])

    entries = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert result.exit_code == 0
    assert entries["test-vrt"]["state"] == "verified"
    assert entries["test-vrt"]["licence"] == "CC-BY-NC-4.0"
    assert entries["vrt-deblur-gopro"]["state"] == "missing"
    assert entries[DEFAULT]["default"] is True


def test_cli_list_table_names_every_record():
    result = runner.invoke(app, ["download-weights", "--list"])

    assert result.exit_code == 0
    for record in list_records():
        assert record.name in result.stdout


def test_cli_offline_missing_is_one_line_error(registered, tmp_path, server):
    result = runner.invoke(app, ["download-weights", "test-vrt", "--cache-dir", str(tmp_path), "--offline"])

    assert result.exit_code == 1
    assert "offline mode is on" in result.stderr
    assert server.state.requests == []


@pytest.mark.parametrize(
    "arguments",
    [[], ["--json"], ["--list", "vrt-deblur-dvd"], ["--all", "vrt-deblur-dvd"]],
)
def test_cli_option_conflicts_are_usage_errors(arguments):
    result = runner.invoke(app, ["download-weights", *arguments])

    assert result.exit_code == 2
