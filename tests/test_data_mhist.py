"""MHIST: loading the release layout and reporting every malformed variant clearly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from helpers import MHIST_COLUMNS, read_annotations, write_annotations, write_mhist, write_png
from PIL import Image

from datadam import data
from datadam.data import channel_stats, mhist
from datadam.errors import DataFormatError, DataNotFoundError

NAME, LABEL, VOTES, PARTITION = MHIST_COLUMNS


# --- a sound folder -----------------------------------------------------------------------


@pytest.mark.parametrize("split,n", [("train", 12), ("test", 6)])
def test_load_fixture(mhist_root, split, n):
    ds = data.load("mhist", root=mhist_root, split=split)
    rows = [r for r in read_annotations(mhist_root) if r[PARTITION] == split]
    assert len(ds) == n == len(rows)
    assert ds.images.shape == (n, 3, 224, 224)
    assert ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64
    assert ds.classes == ["HP", "SSA"]
    assert ds.labels.tolist() == [{"HP": 0, "SSA": 1}[r[LABEL]] for r in rows]
    assert ds.class_counts() == {"HP": n // 2, "SSA": n // 2}
    assert ds.extras["files"] == [r[NAME] for r in rows]
    assert ds.extras["ssa_votes"].dtype == torch.int64
    assert ds.extras["ssa_votes"].tolist() == [int(r[VOTES]) for r in rows]
    assert ds.split == split and ds.name == "mhist"
    assert ds.source == f"MHIST annotations.csv and images/ in {mhist_root}"
    assert ds.describe() == (f"loaded mhist {split}: {n} images of 3x224x224, 2 classes, "
                             f"from MHIST annotations.csv and images/ in {mhist_root}")
    # pixels are the PNG's, in row order
    first = np.asarray(Image.open(mhist_root / "images" / rows[0][NAME]))
    np.testing.assert_array_equal(ds.images[0].permute(1, 2, 0).numpy(), first)


def test_test_split_uses_train_statistics(mhist_root):
    train = data.load("mhist", mhist_root, "train")
    test = data.load("mhist", mhist_root, "test")
    assert len(train.mean) == len(train.std) == 3
    assert train.mean == channel_stats(train.images)[0]
    assert test.mean == train.mean and test.std == train.std
    assert test.mean != channel_stats(test.images)[0]
    # random uniform pixels: mean near 0.5, std near 1/sqrt(12)
    assert train.mean == pytest.approx((0.5,) * 3, abs=0.01)
    assert train.std == pytest.approx((0.2887,) * 3, abs=0.01)


def test_image_size_resizes(mhist_root):
    train = data.load("mhist", mhist_root, "train", image_size=64)
    test = data.load("mhist", mhist_root, "test", image_size=64)
    assert train.images.shape == (12, 3, 64, 64) and train.images.dtype == torch.uint8
    assert test.images.shape == (6, 3, 64, 64)
    assert test.mean == train.mean == channel_stats(train.images)[0]
    # antialiased down-sampling of noise pulls the spread in
    assert train.std[0] < 0.2887 - 0.02


def test_parent_folder_with_mhist_inside(make_mhist):
    root = make_mhist("parent/MHIST", n_train=4, n_test=2)
    ds = data.load("mhist", root.parent, "test")
    assert len(ds) == 2 and ds.source == f"MHIST annotations.csv and images/ in {root}"  # the folder found


def test_write_mhist_sizes_and_seed(tmp_path):
    a = write_mhist(tmp_path / "a", n_train=4, n_test=4, seed=5)
    b = write_mhist(tmp_path / "b", n_train=4, n_test=4, seed=5)
    ta, tb = data.load("mhist", a, "test"), data.load("mhist", b, "test")
    assert torch.equal(ta.images, tb.images)
    assert ta.class_counts() == {"HP": 2, "SSA": 2}


def test_check_sound_folder(mhist_root):
    assert data.check("mhist", root=mhist_root) == []


# --- malformed variants: load raises, check lists, both name the culprit -----------------


def _rewrite(root, edit):
    rows = read_annotations(root)
    edit(rows)
    write_annotations(root, rows, list(rows[0]) if rows else None)


def _break_missing_column(root):
    rows = read_annotations(root)
    write_annotations(root, rows, [NAME, LABEL, PARTITION])
    return "annotations.csv", VOTES


def _break_listed_absent(root):
    (root / "images" / "MHIST_train_003.png").unlink()
    return "line 5 (MHIST_train_003.png)", "image listed but not in"


def _break_unlisted(root):
    write_png(root / "images" / "stray.png", np.random.default_rng(9))
    return str(root / "images" / "stray.png"), "present but not listed"


def _break_label(root):
    def edit(rows):
        rows[1][LABEL] = "TA"
    _rewrite(root, edit)
    return "line 3 (MHIST_train_001.png)", "unknown label 'TA'"


def _break_partition(root):
    def edit(rows):
        rows[10][PARTITION] = "validation"
    _rewrite(root, edit)
    return "line 12 (MHIST_test_002.png)", "unknown partition 'validation'"


def _break_votes(root):
    def edit(rows):
        rows[0][VOTES] = "8"
        rows[2][VOTES] = "two"
    _rewrite(root, edit)
    return "line 2 (MHIST_train_000.png)", "annotator count '8'"


def _break_unreadable(root):
    path = root / "images" / "MHIST_train_004.png"
    path.write_bytes(b"this is not a PNG" * 50)
    return str(path), "unreadable image"


def _break_truncated(root):
    path = root / "images" / "MHIST_train_005.png"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])
    return str(path), "unreadable image"


def _break_size(root):
    path = root / "images" / "MHIST_train_006.png"
    write_png(path, np.random.default_rng(9), 100)
    return str(path), "image is 100x100, expected 224x224"


def _break_no_csv(root):
    (root / "annotations.csv").unlink()
    return str(root), "no annotations.csv"


def _break_no_images(root):
    shutil.rmtree(root / "images")
    return str(root / "images"), "images folder not found"


def _break_empty_csv(root):
    (root / "annotations.csv").write_text("")
    return "annotations.csv", "cannot parse"


BREAKS = {
    "missing-column": (_break_missing_column, DataFormatError),
    "listed-but-absent": (_break_listed_absent, DataFormatError),
    "present-but-unlisted": (_break_unlisted, DataFormatError),
    "unknown-label": (_break_label, DataFormatError),
    "unknown-partition": (_break_partition, DataFormatError),
    "bad-annotator-count": (_break_votes, DataFormatError),
    "unreadable-image": (_break_unreadable, DataFormatError),
    "truncated-image": (_break_truncated, DataFormatError),
    "wrong-size-image": (_break_size, DataFormatError),
    "no-annotations-csv": (_break_no_csv, DataNotFoundError),
    "no-images-folder": (_break_no_images, DataNotFoundError),
    "empty-annotations-csv": (_break_empty_csv, DataFormatError),
}


@pytest.mark.parametrize("kind", list(BREAKS))
def test_malformed_load_raises_naming_culprit(make_mhist, kind):
    breaker, error = BREAKS[kind]
    root = make_mhist(n_train=8, n_test=8)
    where, what = breaker(root)
    for split in ("train", "test"):
        with pytest.raises(error) as info:
            data.load("mhist", root, split)
        message = str(info.value)
        assert where in message, message
        assert what in message, message
        assert "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize("kind", list(BREAKS))
def test_malformed_check_lists_culprit(make_mhist, kind):
    breaker, _ = BREAKS[kind]
    root = make_mhist(n_train=8, n_test=8)
    where, what = breaker(root)
    problems = data.check("mhist", root)
    assert isinstance(problems, list) and len(problems) >= 1
    assert any(where in p and what in p for p in problems), problems


def test_bad_votes_reports_each_row(make_mhist):
    root = make_mhist(n_train=8, n_test=8)
    _break_votes(root)
    problems = data.check("mhist", root)
    assert len(problems) == 2
    assert "line 2 (MHIST_train_000.png): annotator count '8'" in problems[0]
    assert "line 4 (MHIST_train_002.png): annotator count 'two'" in problems[1]


def test_missing_column_named(make_mhist):
    root = make_mhist(n_train=2, n_test=2)
    rows = read_annotations(root)
    write_annotations(root, rows, [NAME, VOTES])
    with pytest.raises(DataFormatError) as info:
        data.load("mhist", root)
    assert f"'{LABEL}'" in str(info.value) and f"'{PARTITION}'" in str(info.value)
    assert f"'{NAME}'" not in str(info.value)


def test_duplicate_and_empty_names(make_mhist):
    root = make_mhist(n_train=4, n_test=2)
    rows = read_annotations(root)
    rows.append(dict(rows[0]))
    rows.append({**rows[1], NAME: ""})
    write_annotations(root, rows)
    problems = data.check("mhist", root)
    assert any("line 8 (MHIST_train_000.png): image listed twice" in p for p in problems)
    assert any("line 9 (no name): empty image name" in p for p in problems)


def test_wrong_size_in_test_split_only_breaks_test(make_mhist):
    root = make_mhist(n_train=4, n_test=4)
    path = root / "images" / "MHIST_test_001.png"
    write_png(path, np.random.default_rng(2), (224, 200))
    assert len(data.load("mhist", root, "train")) == 4
    with pytest.raises(DataFormatError, match="image is 224x200"):
        data.load("mhist", root, "test")
    assert data.check("mhist", root) == [f"{path}: image is 224x200, expected 224x224"]


def test_check_reports_several_problems_at_once(make_mhist):
    root = make_mhist(n_train=8, n_test=8)
    culprits = [_break_label(root), _break_unlisted(root), _break_listed_absent(root),
                _break_unreadable(root), _break_size(root), _break_partition(root)]
    problems = data.check("mhist", root)
    assert len(problems) == len(culprits), problems
    for where, what in culprits:
        assert sum(where in p and what in p for p in problems) == 1, (where, problems)
    # load reports the first and counts the rest, keeping the full list on the error
    with pytest.raises(DataFormatError) as info:
        data.load("mhist", root)
    assert "more problem(s)" in str(info.value)
    assert len(info.value.problems) == 4  # the table's problems: images are decoded after
    assert set(info.value.problems) <= set(problems)


def test_load_decode_problems_all_listed(make_mhist):
    root = make_mhist(n_train=8, n_test=2)
    _break_unreadable(root)
    _break_size(root)
    with pytest.raises(DataFormatError, match=r"\(and 1 more\)") as info:
        data.load("mhist", root, "train")
    assert len(info.value.problems) == 2


def test_resolve_root_missing(tmp_path):
    with pytest.raises(DataNotFoundError, match="bmirds.github.io/MHIST"):
        mhist.resolve_root(tmp_path / "nowhere")
    assert data.check("mhist", tmp_path / "nowhere")[0].startswith("MHIST not found")
