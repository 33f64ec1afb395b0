"""Checks on real spike recordings: TFP against ground truth and size proposals."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import shared_file
from spikedeblur.spikes import DatReader, tfp
from spikedeblur.spikes.guess import confidence, propose_sizes

REDS_FILES = ["reds-spike/200_part1_key_id151.dat", "reds-spike/203_part2_key_id151.dat"]


def _correlation(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.mark.parametrize("name", REDS_FILES)
def test_reds_tfp_matches_ground_truth(name):
    dat = shared_file(name)
    truth = cv2.imread(str(dat.with_suffix(".png")), cv2.IMREAD_GRAYSCALE)
    reader = DatReader(dat, 250, 400)

    image = tfp(reader.read(130, 171))  # 41 frames centred on frame 150

    assert reader.num_frames == 301
    assert _correlation(image, truth) >= 0.93


def test_gopro_tfp_matches_ground_truth():
    dat = shared_file("gopro-spike/000226.dat")
    truth = cv2.imread(str(dat.with_suffix(".png")), cv2.IMREAD_GRAYSCALE)
    truth = cv2.resize(truth, (640, 360), interpolation=cv2.INTER_AREA)
    reader = DatReader(dat, 360, 640)

    image = tfp(reader.read(0, len(reader)))

    assert reader.num_frames == 88
    assert _correlation(image, truth) >= 0.95


@pytest.mark.parametrize(
    ("name", "expected"),
    [(REDS_FILES[0], (250, 400, 0)), (REDS_FILES[1], (250, 400, 0)), ("gopro-spike/000226.dat", (360, 640, 0))],
)
def test_size_proposal_ranks_true_size_first(name, expected):
    proposals = propose_sizes(shared_file(name))

    best = proposals[0]
    assert (best.height, best.width, best.head_cols) == expected
    assert best.score > 0.9


def test_gopro_size_proposal_has_clear_margin():
    proposals = propose_sizes(shared_file("gopro-spike/000226.dat"))

    labels = [proposal.label for proposal in proposals]
    assert sorted(labels) == ["180x320", "360x640", "720x1280"]
    assert confidence(proposals) > 0.2
