"""Multi-formation (IDC's factor): stored images, their tiles, and a run that learns them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import fast_distill
from typer.testing import CliRunner

from datadam.cli import app
from datadam.distill import distill
from datadam.distill.multiformation import decode, decode_snapshots, encode
from datadam.errors import ConfigError
from datadam.synthetic import SyntheticSet


def test_a_stored_image_decodes_to_its_tiles_in_row_major_order():
    stored = torch.zeros(1, 1, 4, 6)
    stored[..., :2, :3], stored[..., :2, 3:], stored[..., 2:, :3], stored[..., 2:, 3:] = 1, 2, 3, 4
    tiles = decode(stored, 2)
    assert tiles.shape == (4, 1, 4, 6)
    for i, value in enumerate([1.0, 2.0, 3.0, 4.0]):
        assert torch.allclose(tiles[i], torch.full((1, 4, 6), value))
    assert decode(stored, 1) is stored and encode(stored, 1) is stored


def test_encode_then_decode_gives_each_image_at_the_lower_resolution():
    images = torch.rand(8, 3, 28, 28)
    stored = encode(images, 2)
    assert stored.shape == (2, 3, 28, 28)
    expected = F.interpolate(F.adaptive_avg_pool2d(images, 14), size=28, mode="bilinear",
                             align_corners=False)
    torch.testing.assert_close(decode(stored, 2), expected)
    assert decode_snapshots(torch.stack([stored, stored]), 2).shape == (2, 8, 3, 28, 28)
    with pytest.raises(ValueError, match="tiles of 4"):
        encode(images[:6], 2)


def test_decoding_passes_the_gradient_to_every_stored_pixel():
    stored = torch.rand(2, 1, 8, 8, requires_grad=True)
    decode(stored, 2).sum().backward()
    assert stored.grad.shape == stored.shape and (stored.grad > 0).all()


@pytest.mark.parametrize("method", ["datadam", "dm"])
def test_a_multi_formation_run_trains_on_ipc_times_factor_squared_images(tiny, method):
    syn = distill(tiny, method, ipc=1, factor=2, snapshot_every=1, **fast_distill())
    k = tiny.num_classes
    assert syn.images.shape == (4 * k, 1, 28, 28) and syn.images_per_class == 4 and syn.ipc == 1
    assert torch.equal(syn.labels, torch.arange(k).repeat_interleave(4))
    assert syn.metadata["config"]["factor"] == 2 and syn.metadata["config"]["ipc"] == 1
    assert syn.snapshots.shape == (4, 4 * k, 1, 28, 28)
    # the start tiles 4 real images of the class, each at half the resolution
    start = syn.at_iteration(0)
    for c in range(k):
        real = tiny.images[tiny.indices_of(c)].float().div(255).sub(tiny.mean[0]).div(tiny.std[0])
        halves = F.interpolate(F.adaptive_avg_pool2d(real, 14), size=28, mode="bilinear",
                               align_corners=False)
        for tile in start.images[start.labels == c]:
            assert (halves - tile).abs().flatten(1).amax(1).min() < 1e-5
    assert not torch.equal(syn.images, start.images)


def test_a_multi_formation_run_resumes_and_its_checkpoint_loads_decoded(tiny, tmp_path):
    full = distill(tiny, "datadam", ipc=1, factor=2, **fast_distill(iterations=4))
    ckpt = tmp_path / "run.ckpt.safetensors"
    distill(tiny, "datadam", ipc=1, factor=2, checkpoint=ckpt, checkpoint_every=2, snapshot_every=2,
            **fast_distill(iterations=2))
    partial = SyntheticSet.load(ckpt)
    assert partial.images.shape == full.images.shape and partial.images_per_class == 4 and partial.ipc == 1
    assert partial.snapshots.shape == (2, *full.images.shape)
    resumed = distill(tiny, "datadam", ipc=1, factor=2, checkpoint=ckpt, resume=True,
                      snapshot_every=2, **fast_distill(iterations=4))
    torch.testing.assert_close(resumed.images, full.images, rtol=0, atol=1e-6)


def test_multi_formation_errors(tiny):
    with pytest.raises(ConfigError, match="factor must be at least 1"):
        distill(tiny, "datadam", ipc=1, factor=0, **fast_distill())
    with pytest.raises(ConfigError, match="factor 3 does not divide the image size 28x28"):
        distill(tiny, "datadam", ipc=1, factor=3, **fast_distill())
    with pytest.raises(ConfigError, match="'random' selects real images: it has no factor"):
        distill(tiny, "random", ipc=1, factor=2, **fast_distill())
    # a real start needs ipc * factor**2 images of every class (the fixture has 5)
    with pytest.raises(ConfigError, match=r"ipc=2 x factor 2\*\*2 is larger than class"):
        distill(tiny, "datadam", ipc=2, factor=2, **fast_distill())
    tiles = distill(tiny, "datadam", ipc=2, factor=2, init="noise", **fast_distill(iterations=1))
    assert tiles.images_per_class == 8 and tiles.ipc == 2


def test_distill_and_show_with_a_factor_from_the_command_line(mnist_idx_root, tmp_path):
    out = tmp_path / "s.safetensors"
    runner = CliRunner()
    r = runner.invoke(app, ["distill", "mnist", "--root", str(mnist_idx_root), "--ipc", "1", "--factor", "2",
                            "--iterations", "2", "--batch-real", "4", "--device", "cpu", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "40 images (IPC 1 x factor 2 = 4 per class)" in r.output
    r = runner.invoke(app, ["show", str(out)])
    assert r.exit_code == 0 and "40 (IPC 1 x factor 2 = 4 per class, 10 classes)" in r.output, r.output
    assert SyntheticSet.load(out).describe_ipc() == "IPC 1 x factor 2 = 4 per class"
    plain = SyntheticSet(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), ["a", "b"], (0.5,), (0.5,))
    assert plain.describe_ipc() == "IPC 1"
    r = runner.invoke(app, ["distill", "mnist", "--root", str(mnist_idx_root), "--factor", "3",
                            "--iterations", "1", "--device", "cpu", "--out", str(tmp_path / "t.safetensors")])
    assert r.exit_code != 0 and "does not divide the image size" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "t.safetensors").exists()
