"""happyhouse.outputs: where results go, checked before the work, leaving nothing behind."""
import pytest

from happyhouse import outputs
from happyhouse.errors import OutputError


def test_a_writable_folder_passes_and_a_missing_one_is_not_made(tmp_path):
    assert outputs.check_folder(tmp_path) == tmp_path
    assert outputs.check_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert outputs.check_file(tmp_path / "a" / "picture.png") == tmp_path / "a" / "picture.png"
    assert list(tmp_path.iterdir()) == []


def test_what_cannot_be_written_is_named(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("kept")
    with pytest.raises(OutputError, match="notes.txt is a file, not a folder"):
        outputs.check_folder(blocker / "out")
    with pytest.raises(OutputError, match="notes.txt is a file, not a folder"):
        outputs.check_file(blocker / "picture.png")
    with pytest.raises(OutputError, match="is a folder; give a file name"):
        outputs.check_file(tmp_path)
    with pytest.raises(OutputError, match="/proc/x: cannot write there"):
        outputs.check_folder("/proc/x")
    assert blocker.read_text() == "kept"
