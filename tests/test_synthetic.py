"""SyntheticSet files: safetensors round trip, pictures, folders, official .pt import."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from PIL import Image

from datadam.errors import DatadamError
from datadam.files import atomic_path
from datadam.synthetic import SyntheticSet, SyntheticSetFormatError

CLASSES = ["a", "b", "c"]


def make_set(ipc=2, channels=1, size=8) -> SyntheticSet:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(3 * ipc, channels, size, size, generator=g)
    labels = torch.arange(3).repeat_interleave(ipc)
    return SyntheticSet(images, labels, CLASSES, (0.5,) * channels, (0.25,) * channels,
                        {"method": "datadam", "dataset": "folder", "config": {"ipc": ipc}})


def test_save_load_round_trip(tmp_path):
    syn = make_set()
    path = syn.save(tmp_path / "s.safetensors")
    back = SyntheticSet.load(path)
    assert torch.equal(back.images, syn.images) and torch.equal(back.labels, syn.labels)
    assert back.classes == CLASSES and back.mean == (0.5,) and back.std == (0.25,)
    assert back.metadata["method"] == "datadam" and back.metadata["config"] == {"ipc": 2}
    assert back.ipc == 2 and back.image_shape == (1, 8, 8)
    assert [p.name for p in tmp_path.iterdir()] == ["s.safetensors"]  # no temporary left


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    import datadam.synthetic as mod

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(mod, "save_file", boom)
    with pytest.raises(OSError):
        make_set().save(tmp_path / "s.safetensors")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\x00" * 100])
def test_unreadable_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(SyntheticSetFormatError, match="bad.safetensors"):
        SyntheticSet.load(path)


def test_foreign_safetensors_and_damaged_checkpoints_are_refused(tmp_path):
    from safetensors.torch import save_file

    from datadam.synthetic import save_tensors
    save_file({"w": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(SyntheticSetFormatError, match="model.safetensors: not a synthetic set "
                                                      r"\(it is a safetensors file of other tensors"):
        SyntheticSet.load(tmp_path / "model.safetensors")
    save_tensors(tmp_path / "ck.safetensors", {"syn": torch.zeros(1)}, {"kind": "checkpoint"})
    with pytest.raises(SyntheticSetFormatError, match="missing 'config' in a datadam checkpoint"):
        SyntheticSet.load(tmp_path / "ck.safetensors")
    save_tensors(tmp_path / "report.safetensors", {"x": torch.zeros(1)}, {"kind": "report"})
    with pytest.raises(SyntheticSetFormatError, match=r"not a synthetic set \(it is a datadam report;"):
        SyntheticSet.load(tmp_path / "report.safetensors")
    with pytest.raises(SyntheticSetFormatError, match="no such file"):
        SyntheticSet.load(tmp_path / "missing.safetensors")


def test_grid_is_one_row_per_class_and_denormalised(tmp_path):
    syn = make_set(ipc=4, channels=3, size=8)
    syn.images[0] = (torch.ones(3, 8, 8) - 0.5) / 0.25  # exactly white after de-normalising
    path = syn.save_grid(tmp_path / "grid.png", pad=2)
    with Image.open(path) as im:
        w, h = im.size
        assert (w, h) == (2 + 4 * (8 + 2), 2 + 3 * (8 + 2))
        assert im.getpixel((5, 5)) == (255, 255, 255)
    den = syn.denormalized()
    assert den.min() >= 0 and den.max() <= 1


def test_export_folder_writes_an_image_folder(tmp_path):
    root = make_set(ipc=2).export_folder(tmp_path / "out")
    assert sorted(p.name for p in root.iterdir()) == CLASSES
    assert all(len(list((root / c).glob("*.png"))) == 2 for c in CLASSES)
    with pytest.raises(DatadamError, match="not empty"):
        make_set().export_folder(root)


def test_import_official_pt(tmp_path):
    images = torch.randn(6, 1, 8, 8)
    labels = torch.tensor([2, 0, 1, 0, 1, 2])
    path = tmp_path / "res_DataDAM_MNIST_ConvNet_2ipc.pt"
    torch.save({"data": [[images, labels]], "accs_all_exps": {"ConvNet": [0.9]}}, path)
    syn = SyntheticSet.from_official(path, CLASSES, (0.1,), (0.3,))
    assert syn.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(syn.images[0], images[1]) and syn.metadata["method"] == "imported"


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_import_refuses_pickled_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"data": [[_Evil(), torch.zeros(1)]]}, f, protocol=2)  # torch.save's protocol
    with pytest.raises(SyntheticSetFormatError, match="not an official"):
        SyntheticSet.from_official(path, CLASSES, (0.1,), (0.3,))
    assert "pwned" not in capsys.readouterr().out


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "r.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
