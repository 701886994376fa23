"""The one atomic writer: the destination changes only when the write succeeds."""
import os
from pathlib import Path

import pytest

from sritm_tf import fileio


def test_success_replaces_the_destination_and_leaves_nothing_else(tmp_path):
    dest = tmp_path / "out.png"
    dest.write_bytes(b"old")
    with fileio.atomic_path(dest) as tmp:
        assert isinstance(tmp, Path) and tmp.parent == tmp_path and tmp.name.startswith(".")
        assert tmp.name.endswith("out.png")  # extension-sniffing writers (cv2, Keras) still work
        assert dest.read_bytes() == b"old"  # not replaced before the block ends
        tmp.write_bytes(b"new")
    assert dest.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.png"]


def test_an_exception_keeps_the_destination_and_removes_the_temporary(tmp_path):
    dest = str(tmp_path / "out.json")
    with open(dest, "w") as f:
        f.write("old")
    with pytest.raises(RuntimeError, match="boom"):
        with fileio.atomic_path(dest) as tmp:
            assert isinstance(tmp, str)
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("boom")
    assert open(dest).read() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_an_exception_before_any_write_creates_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_path(tmp_path / "new.npz"):
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_a_folder_is_swapped_in_whole(tmp_path):
    dest = tmp_path / "1"
    dest.mkdir()
    (dest / "old.pb").write_text("old")
    with fileio.atomic_path(dest) as tmp:
        tmp.mkdir()
        (tmp / "saved_model.pb").write_text("new")
        assert not tmp.name.isdigit()  # TF Serving ignores it
    assert os.listdir(dest) == ["saved_model.pb"]
    assert os.listdir(tmp_path) == ["1"]
    with pytest.raises(ValueError):
        with fileio.atomic_path(dest) as tmp:
            tmp.mkdir()
            (tmp / "partial").write_text("x")
            raise ValueError
    assert os.listdir(dest) == ["saved_model.pb"] and os.listdir(tmp_path) == ["1"]


def test_overwrite_false_refuses_an_existing_destination_up_front(tmp_path):
    dest = tmp_path / "model.tflite"
    dest.write_bytes(b"old")
    entered = False
    with pytest.raises(FileExistsError, match="model.tflite: exists"):
        with fileio.atomic_path(dest, overwrite=False):
            entered = True
    assert not entered and dest.read_bytes() == b"old"


def test_temporaries_are_recognised(tmp_path):
    assert fileio.is_temporary(fileio.temporary_path(tmp_path / "shard-00001.tfrecord"))
    assert fileio.is_temporary(".old-12-1")
    assert not fileio.is_temporary("shard-00001.tfrecord") and not fileio.is_temporary(".partial")
