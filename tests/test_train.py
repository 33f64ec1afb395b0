"""Training: configuration, data sets, the loop with phases, checkpoints and resume, and DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from spikedeblur.cli import app
from spikedeblur.errors import InvalidInputError, OutputExistsError
from spikedeblur.spikes import DatWriter
from spikedeblur.training import Trainer, charbonnier_loss, cosine_schedule, load_config, mse_loss, parse_config
from spikedeblur.training.datasets import FileClipDataset, ProceduralDataset, read_gopro_spike_clips
from spikedeblur.training.trainer import check_output_dir, sample_ids

runner = CliRunner()

# The smallest run that exercises everything: one 64x64 clip of 2 frames per step.
TINY_RUN = {
    "data": {"clip_length": 2, "crop_size": 64, "ticks_per_bin": [1, 2]},
    "training": {"steps": 3, "batch_size": 1, "log_every": 1, "validate_every": 100, "checkpoint_every": 100},
    "validation": {"num_clips": 1, "clip_length": 2, "size": 64},
}


def _config(tmp_path: Path, **changes) -> dict:
    data = json.loads(json.dumps(TINY_RUN))
    data["output_dir"] = str(tmp_path)
    for section, values in changes.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return data


def test_charbonnier_loss_value():
    prediction = torch.zeros(2, 3)
    target = torch.full((2, 3), 0.3)

    assert float(charbonnier_loss(prediction, target, eps=0.4)) == pytest.approx(0.5)


def test_mse_loss_value():
    prediction = torch.zeros(2, 3)
    target = torch.tensor([[0.3, 0.0, 0.0], [0.0, -0.3, 0.0]])

    assert float(mse_loss(prediction, target)) == pytest.approx(0.03)


@pytest.mark.parametrize(("loss", "expected"), [("mse", 0.09), ("charbonnier", 0.5)])
def test_trainer_uses_the_configured_loss(tmp_path, loss, expected):
    config = parse_config(_config(tmp_path, optimizer={"loss": loss, "charbonnier_eps": 0.4}))
    trainer = Trainer(config)

    value = trainer.loss(torch.zeros(1, 1, 3, 2, 2), torch.full((1, 1, 3, 2, 2), 0.3))

    assert float(value) == pytest.approx(expected)


def test_cosine_schedule_warms_up_then_decays():
    factors = [cosine_schedule(step, total_steps=100, warmup_steps=10, min_ratio=0.1) for step in range(101)]

    assert factors[0] == pytest.approx(0.1)
    assert factors[9] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.55)
    assert factors[100] == pytest.approx(0.1)
    assert all(later <= earlier + 1e-12 for earlier, later in zip(factors[10:], factors[11:]))


def test_sample_ids_are_disjoint_across_ranks_and_steps():
    seen = [
        index
        for step in range(5)
        for rank in range(3)
        for index in sample_ids(step, rank=rank, world_size=3, batch_size=2)
    ]

    assert len(seen) == len(set(seen)) == 30


def test_config_reads_toml_with_phases(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text(
        textwrap.dedent(
            """
            seed = 3
            output_dir = "out"
            [model]
            output_init_scale = 0.5
            [training]
            steps = 10
            [[phases]]
            name = "spike"
            steps = 4
            train = "spike"
            [[phases]]
            name = "all"
            steps = 6
            """
        )
    )

    config = load_config(path)

    assert config.output_dir == tmp_path / "out"
    assert [phase.name for phase in config.phases] == ["spike", "all"]
    assert config.phase_at(3).train == "spike"
    assert config.phase_at(4).train == "all"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"trainig": {}}, "unknown keys"),
        ({"training": {"steps": 5}, "phases": [{"name": "a", "steps": 3}]}, "add up to 3"),
        ({"data": {"kind": "video"}}, "unknown"),
        ({"data": {"kind": "simulated"}}, "needs 'paths'"),
        ({"data": {"threshold": [4, 1]}}, "threshold"),
        ({"optimizer": {"lr": 0}}, "lr=0"),
        ({"optimizer": {"loss": "l1"}}, "loss 'l1' is unknown"),
        ({"training": {"precision": "fp8"}}, "precision"),
        (
            {"model": {"output_init_scale": 0}, "training": {"steps": 2}, "phases": [{"name": "s", "steps": 2, "train": "spike"}]},
            "output_init_scale",
        ),
        ({"model": {"output_init_scale": 2}}, "output_init_scale"),
    ],
)
def test_config_rejects_invalid_values(data, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_config(data)


def test_repository_configs_parse():
    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))

    assert [path.name for path in configs] == [
        "compact-tiny-finetune-1.toml",
        "compact-tiny-finetune-2.toml",
        "compact-tiny.toml",
    ]
    for path in configs:
        config = load_config(path)
        assert config.model.preset == "vrt-spike-tiny", path.name
        assert config.output_dir.parent.name == "runs", path.name

    # Each fine-tuning stage starts from the final weights of the stage before it.
    stages = {path.name: load_config(path) for path in configs}
    first, second = stages["compact-tiny-finetune-1.toml"], stages["compact-tiny-finetune-2.toml"]
    assert first.model.init_weights.resolve() == (stages["compact-tiny.toml"].output_dir / "final.safetensors").resolve()
    assert second.model.init_weights.resolve() == (first.output_dir / "final.safetensors").resolve()


def test_config_file_missing_or_not_toml(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[training\n")

    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "none.toml")
    with pytest.raises(InvalidInputError, match="not valid TOML"):
        load_config(broken)


def test_procedural_dataset_sample_shapes_and_determinism():
    dataset = ProceduralDataset(
        clip_length=2, size=32, num_bins=8, ticks_per_bin=(1, 3), threshold=(1, 4), speed=(2, 6), spike_scale=0.5
    )

    first, again, other = dataset[5], dataset[5], dataset[6]

    assert first["blurry"].shape == (2, 3, 32, 32)
    assert first["voxels"].shape == (2, 8, 32, 32)
    assert first["sharp"].shape == (2, 3, 32, 32)
    assert first["voxels"].min() >= 0.0
    assert first["voxels"].max() <= 1.0
    np.testing.assert_array_equal(first["voxels"], again["voxels"])
    assert not np.array_equal(first["blurry"], other["blurry"])


def test_procedural_dataset_draws_augmentation_ranges():
    dataset = ProceduralDataset(
        clip_length=2, size=32, num_bins=8, ticks_per_bin=(1, 25), threshold=(1, 4), speed=(2, 6), spike_scale=0.5
    )

    settings = [dataset.settings(index) for index in range(40)]

    assert min(item.ticks_per_bin for item in settings) < 8
    assert max(item.ticks_per_bin for item in settings) > 18
    assert 1.0 <= min(item.threshold for item in settings) < 2.0 < max(item.threshold for item in settings) <= 4.0


def test_simulated_dataset_random_crops(tmp_path):
    output = tmp_path / "sim"
    result = runner.invoke(
        app,
        ["--quiet", "simulate", "--procedural", "--frames", "3", "--size", "64x48", "--ticks-per-frame", "16", "-o", str(output)],
    )
    assert result.exit_code == 0, result.output
    config = parse_config(_config(tmp_path, data={"kind": "simulated", "paths": [str(tmp_path)], "crop_size": 32}))

    from spikedeblur.training.trainer import build_training_dataset

    dataset = build_training_dataset(config, num_bins=8)
    sample = dataset[0]

    assert isinstance(dataset, FileClipDataset)
    assert len(dataset) == 2
    assert sample["blurry"].shape == (2, 3, 32, 32)
    assert sample["voxels"].shape == (2, 8, 32, 32)
    assert sample["sharp"].shape == (2, 3, 32, 32)
    assert sample["voxels"].max() > 0


def _write_gopro_layout(root: Path, frames: int = 3) -> None:
    import cv2

    rng = np.random.default_rng(0)
    for kind in ("train_blurred", "train_GT"):
        folder = root / "GOPRO_Large" / kind / "clip0"
        folder.mkdir(parents=True)
        for index in range(frames):
            cv2.imwrite(str(folder / f"{index:06d}.png"), rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
    spike_folder = root / "GOPRO_Large_spike_seq" / "train" / "clip0" / "spike"
    spike_folder.mkdir(parents=True)
    (root / "GOPRO_Large_spike_seq" / "config.yaml").write_text("spike_h: 16\nspike_w: 24\n")
    for index in range(frames):
        with DatWriter(spike_folder / f"{index:06d}.dat", 16, 24) as writer:
            writer.write(rng.integers(0, 2, (12, 16, 24), dtype=np.uint8))


def test_gopro_spike_layout_samples(tmp_path):
    _write_gopro_layout(tmp_path)

    clips = read_gopro_spike_clips(tmp_path)
    dataset = FileClipDataset(clips, clip_length=2, crop_size=16, num_bins=4, seed=1)
    sample = dataset[3]

    assert [clip.num_frames for clip in clips] == [3]
    assert sample["blurry"].shape == (2, 3, 16, 16)
    assert sample["voxels"].shape == (2, 4, 16, 16)
    assert 0.2 < sample["voxels"].mean() < 0.8


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


@pytest.mark.slow
def test_resume_reproduces_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    straight = Trainer(parse_config(_config(tmp_path / "straight")))
    straight.train()

    first_half = Trainer(parse_config(_config(tmp_path / "resumed")))
    first_half.train(max_steps=2)
    checkpoint = first_half.latest_checkpoint()
    resumed = Trainer(parse_config(_config(tmp_path / "resumed")))
    resumed.train(resume=checkpoint)

    assert checkpoint.name == "step_0000002.pt"
    assert resumed.step == straight.step == 3
    expected, actual = _weights(straight.model), _weights(resumed.model)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-6, msg=name)
    assert resumed.scheduler.state_dict()["last_epoch"] == 3
    assert (tmp_path / "resumed" / "final.safetensors").is_file()


@pytest.mark.slow
def test_spike_phase_freezes_backbone(tmp_path):
    torch.set_num_threads(1)
    phases = [{"name": "spike", "steps": 1, "train": "spike"}, {"name": "all", "steps": 1}]
    config = parse_config(
        _config(tmp_path, training={"steps": 2}, phases=phases)
    )
    trainer = Trainer(config)
    spike_names = {name for name, p in trainer.model.named_parameters() if any(p is q for q in trainer.model.spike_branch_parameters())}
    before = _weights(trainer.model)

    trainer.train(max_steps=1)
    after_spike_phase = _weights(trainer.model)
    trainer.train(max_steps=1)
    after_all = _weights(trainer.model)

    backbone = [name for name, _ in trainer.model.named_parameters() if name not in spike_names]
    assert all(torch.equal(before[name], after_spike_phase[name]) for name in backbone)
    assert any(not torch.equal(before[name], after_spike_phase[name]) for name in spike_names)
    assert any(not torch.equal(after_spike_phase[name], after_all[name]) for name in backbone)


@pytest.mark.slow
def test_validation_logs_spike_reliance(tmp_path):
    torch.set_num_threads(1)
    trainer = Trainer(parse_config(_config(tmp_path, training={"steps": 1, "validate_every": 1})))

    result = trainer.train()

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    validation = [record for record in records if "val_psnr" in record]
    assert len(validation) == 1
    assert validation[0]["val_spike_reliance"] == pytest.approx(result.validation.spike_reliance)
    assert validation[0]["val_psnr_blurry"] > 10
    # A shrunken output head keeps the untrained model near the identity, so it starts near the blurry PSNR.
    assert abs(validation[0]["val_psnr"] - validation[0]["val_psnr_blurry"]) < 3


def test_output_dir_with_checkpoints_needs_resume(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step_0000001.pt").write_bytes(b"")

    with pytest.raises(OutputExistsError, match="--resume"):
        check_output_dir(tmp_path, resume=False)
    check_output_dir(tmp_path, resume=True)


def test_train_cli_rejects_missing_config(tmp_path):
    result = runner.invoke(app, ["train", "--config", str(tmp_path / "none.toml")])

    assert result.exit_code == 1
    assert "not found" in result.stderr


DDP_SCRIPT = """
import json, sys, torch
from spikedeblur.training import Trainer, parse_config
torch.set_num_threads(1)
config = parse_config(json.loads(sys.argv[1]))
trainer = Trainer(config, device="cpu")
trainer.train()
rank = trainer.context.rank
state = {name: tensor for name, tensor in trainer.model.state_dict().items()}
torch.save(state, f"{sys.argv[2]}/rank{rank}.pt")
"""


@pytest.mark.slow
def test_torchrun_gloo_two_ranks_identical_weights(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    config = _config(tmp_path / "run", training={"steps": 2})
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}

    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(script), json.dumps(config), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=environment, check=False,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    initial = Trainer(parse_config(_config(tmp_path / "init", training={"steps": 2}))).model.state_dict()
    for name in rank0:
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0, msg=name)
    assert any(not torch.equal(rank0[name], initial[name]) for name in rank0)
    assert (tmp_path / "run" / "final.safetensors").is_file()


@pytest.mark.slow
def test_fusion_window_override_exports_custom_config(tmp_path):
    from spikedeblur.models.checkpoint import load_model

    torch.set_num_threads(1)
    config = parse_config(_config(tmp_path, model={"fusion_windows": [1, 1, 1, 1]}, training={"steps": 1}))

    result = Trainer(config).train()
    model, metadata = load_model(result.final_weights, device="cpu")

    assert model.config.fusion_windows == (1, 1, 1, 1)
    assert metadata.preset is None
    assert metadata.extra["base_preset"] == "vrt-spike-tiny"
