"""Resumable, verified downloads against a loopback HTTP server started by each test."""

from __future__ import annotations

import hashlib
import logging
import os
import socket

import pytest
from loopback_server import LoopbackServer

from spikedeblur.errors import CheckpointError, DownloadError
from spikedeblur.weights.download import download_file, mirror_urls

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes, several read chunks
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    with LoopbackServer() as running:
        running.state.files["/w.bin"] = PAYLOAD
        yield running


def test_full_download_writes_verified_file(server, tmp_path):
    destination = tmp_path / "w.bin"
    progress_calls = []

    sha256 = download_file(
        [server.url("/w.bin")],
        destination,
        expected_sha256=PAYLOAD_SHA256,
        expected_size=len(PAYLOAD),
        progress=lambda done, total: progress_calls.append((done, total)),
    )

    assert sha256 == PAYLOAD_SHA256
    assert destination.read_bytes() == PAYLOAD
    assert not (tmp_path / "w.bin.part").exists()
    assert progress_calls[0] == (0, len(PAYLOAD))
    assert progress_calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert server.state.requests == [("/w.bin", None)]


def test_broken_transfer_resumes_with_range(server, tmp_path, caplog):
    server.state.cut_after["/w.bin"] = 30_000
    destination = tmp_path / "w.bin"

    with caplog.at_level(logging.WARNING, logger="spikedeblur.weights.download"):
        download_file([server.url("/w.bin")], destination, expected_sha256=PAYLOAD_SHA256)

    assert destination.read_bytes() == PAYLOAD
    assert server.state.requests == [("/w.bin", None), ("/w.bin", "bytes=30000-")]
    assert "resuming" in caplog.text


def test_part_file_from_earlier_run_is_resumed(server, tmp_path):
    destination = tmp_path / "w.bin"
    (tmp_path / "w.bin.part").write_bytes(PAYLOAD[:50_000])

    download_file([server.url("/w.bin")], destination, expected_sha256=PAYLOAD_SHA256)

    assert destination.read_bytes() == PAYLOAD
    assert server.state.requests == [("/w.bin", "bytes=50000-")]


def test_redirect_keeps_range_header(server, tmp_path):
    server.state.redirects["/release/w.bin"] = "/storage/w.bin"
    server.state.files["/storage/w.bin"] = PAYLOAD
    server.state.cut_after["/storage/w.bin"] = 10_000

    download_file([server.url("/release/w.bin")], tmp_path / "w.bin", expected_sha256=PAYLOAD_SHA256)

    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD
    assert server.state.requests == [
        ("/release/w.bin", None),
        ("/storage/w.bin", None),
        ("/release/w.bin", "bytes=10000-"),
        ("/storage/w.bin", "bytes=10000-"),
    ]


def test_server_without_range_restarts_from_zero(server, tmp_path):
    server.state.support_range = False
    destination = tmp_path / "w.bin"
    (tmp_path / "w.bin.part").write_bytes(b"stale bytes that must not be kept")

    download_file([server.url("/w.bin")], destination, expected_sha256=PAYLOAD_SHA256)

    assert destination.read_bytes() == PAYLOAD


def test_complete_part_rejected_by_416_restarts(server, tmp_path):
    destination = tmp_path / "w.bin"
    (tmp_path / "w.bin.part").write_bytes(PAYLOAD + b"extra")

    download_file([server.url("/w.bin")], destination, expected_sha256=PAYLOAD_SHA256)

    assert destination.read_bytes() == PAYLOAD
    assert [header for _, header in server.state.requests] == [f"bytes={len(PAYLOAD) + 5}-", None]


def test_wrong_hash_rejected_and_part_removed(server, tmp_path):
    destination = tmp_path / "w.bin"

    with pytest.raises(DownloadError, match="SHA-256 is") as caught:
        download_file([server.url("/w.bin")], destination, expected_sha256="0" * 64)

    assert "0" * 64 in str(caught.value)
    assert not destination.exists()
    assert not (tmp_path / "w.bin.part").exists()


def test_wrong_size_rejected_and_part_removed(server, tmp_path):
    destination = tmp_path / "w.bin"

    with pytest.raises(DownloadError, match=f"size is {len(PAYLOAD)} bytes, expected 10"):
        download_file([server.url("/w.bin")], destination, expected_size=10)

    assert not (tmp_path / "w.bin.part").exists()


def test_failed_structure_check_removes_part(server, tmp_path):
    def reject(path):
        raise CheckpointError(f"{path.name} is not a checkpoint")

    with pytest.raises(DownloadError, match="is not a checkpoint"):
        download_file([server.url("/w.bin")], tmp_path / "w.bin", verify=reject)

    assert list(tmp_path.iterdir()) == []


def test_mirrors_tried_in_order(server, tmp_path, caplog):
    server.state.fail_status["/broken/w.bin"] = 503
    server.state.files["/good/w.bin"] = PAYLOAD
    urls = [server.url("/missing/w.bin"), server.url("/broken/w.bin"), server.url("/good/w.bin")]

    with caplog.at_level(logging.WARNING, logger="spikedeblur.weights.download"):
        download_file(urls, tmp_path / "w.bin", expected_sha256=PAYLOAD_SHA256)

    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD
    assert [path for path, _ in server.state.requests] == ["/missing/w.bin", "/broken/w.bin", "/good/w.bin"]
    assert "HTTP 404" in caplog.text
    assert "HTTP 503" in caplog.text


def test_all_mirrors_failing_names_each_url(server, tmp_path):
    urls = [server.url("/a.bin"), server.url("/b.bin")]

    with pytest.raises(DownloadError) as caught:
        download_file(urls, tmp_path / "w.bin")

    message = str(caught.value)
    assert "\n" not in message
    assert f"{urls[0]}: HTTP 404" in message
    assert f"{urls[1]}: HTTP 404" in message


def test_malformed_mirror_url_falls_through(server, tmp_path):
    urls = ["http://127.0.0.1:notaport/w.bin", server.url("/w.bin")]

    download_file(urls, tmp_path / "w.bin", expected_sha256=PAYLOAD_SHA256)

    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD


def test_silent_server_times_out(tmp_path):
    # A listening socket that never accepts: connecting succeeds through the backlog, reading stalls.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/w.bin"

        with pytest.raises(DownloadError, match="timed out"):
            download_file([url], tmp_path / "w.bin", timeout=0.3)


def test_mirror_env_url_comes_first(monkeypatch):
    monkeypatch.setenv("SPIKEDEBLUR_MIRROR", "http://127.0.0.1:9/weights/")

    urls = mirror_urls("w.pth", ("https://example.org/w.pth",))

    assert urls == ("http://127.0.0.1:9/weights/w.pth", "https://example.org/w.pth")


def test_mirror_env_rejects_other_schemes(monkeypatch):
    monkeypatch.setenv("SPIKEDEBLUR_MIRROR", "ftp://mirror/weights")

    with pytest.raises(DownloadError, match="SPIKEDEBLUR_MIRROR"):
        mirror_urls("w.pth", ())


def test_unset_mirror_env_keeps_urls(monkeypatch):
    monkeypatch.delenv("SPIKEDEBLUR_MIRROR", raising=False)

    assert mirror_urls("w.pth", ("https://a/w.pth",)) == ("https://a/w.pth",)
    assert os.environ.get("SPIKEDEBLUR_MIRROR") is None
