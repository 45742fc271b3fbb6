"""Pictures the package writes to files leave the caller's matplotlib backend alone (a notebook
that grades a class or calibrates the door keeps its inline figures)."""
import matplotlib
import numpy as np
from PIL import Image

from happyhouse.door import calibration
from happyhouse.grading.report import plot_pass_rates


def test_file_pictures_keep_the_backend(tmp_path):
    before = matplotlib.get_backend()
    matplotlib.use("pdf")
    try:
        vectors = np.array([[0, 0], [0.1, 0], [1, 1], [1.1, 1], [3, 0]], np.float32)
        result = calibration.calibrate(vectors, ["a", "a", "b", "b", "c"], far=0.1)
        calibration.plot_roc(result, tmp_path / "roc.png")
        reports = [{"exercises": [{"exercise": "gram_matrix", "verdict": "pass"}]},
                   {"exercises": [{"exercise": "gram_matrix", "verdict": "fail"}]}]
        plot_pass_rates(reports, ["gram_matrix"], tmp_path / "pass_rates.png")
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use(before)
    for name in ("roc.png", "pass_rates.png"):
        with Image.open(tmp_path / name) as picture:
            assert picture.format == "PNG" and picture.size[0] >= 400
