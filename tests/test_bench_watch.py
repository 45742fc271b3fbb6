"""bench/watch.py's own pieces: when each visit's face appears, and the latency of each visit's decision."""
import numpy as np
import pytest

from bench import watch


def test_appearances_follow_the_camera_clock():
    per_visit = int((watch.EMPTY_S + watch.FACE_S) * watch.CAMERA_FPS)     # 60 frames
    t = watch.appearances(100.0, seconds=9.0, per_visit=per_visit, first_face=15)
    assert t == pytest.approx([101.0, 105.0])                              # the third visit starts after 9 s


def test_latency_is_the_first_decision_within_each_visit():
    appeared = np.array([1.0, 5.0, 9.0])
    # visit 1 decided twice (first counts), visit 2 never, a decision before any face is ignored
    assert watch.latencies(appeared, [0.5, 1.3, 1.9, 9.25]) == pytest.approx([0.3, 0.25])


def test_rss_slope_after_the_warm_up():
    from bench.watch_memory import rss_slope
    # 40 MiB of warm-up in the first 60 s, then +0.5 MiB per 1000 frames at 10 frames/s
    samples = [(0.0, 0, 2000.0), (30.0, 300, 2040.0)] + [(t, 10 * t, 2040.0 + 0.5 * 10 * t / 1000)
                                                           for t in range(60, 601, 5)]
    got = rss_slope(samples, warmup_s=60.0)
    assert got["per_1000_frames"] == pytest.approx(0.5) and got["per_minute"] == pytest.approx(0.3)
    assert (got["start_MiB"], got["end_MiB"], got["frames_after_warmup"]) == (2000.0, 2043.0, 5400)
    assert got["per_1000_frames_ci95"] == pytest.approx(0.0, abs=1e-6)           # samples exactly on the line
    assert rss_slope(samples[:2], warmup_s=60.0)["per_1000_frames"] is None     # nothing after the warm-up
    sawtooth = [(t, 10 * t, 2040.0 + (8.0 if (t // 30) % 2 else -8.0)) for t in range(60, 601, 5)]
    noisy = rss_slope(sawtooth, warmup_s=60.0)
    assert noisy["per_1000_frames_ci95"] > abs(noisy["per_1000_frames"])       # flat within its own scatter
    assert got["floor_per_1000_frames"] == pytest.approx(0.5)


def test_the_floor_ignores_a_block_taken_and_given_back():
    from bench.watch_memory import rss_slope
    # a flat 1478 MiB floor; a 14 MiB block held in more and more of the later samples
    held = [(t, 10 * t, 1478.0 + (14.0 if (t % 20 == 0 and t > 300) or t % 60 == 0 else 0.0))
            for t in range(60, 601, 5)]
    got = rss_slope(held, warmup_s=60.0)
    assert got["per_1000_frames"] > 0.5                        # the plain slope reads growth
    assert got["floor_per_1000_frames"] == pytest.approx(0.0, abs=1e-9)


def test_rss_from_proc_status(tmp_path):
    from bench.watch_memory import proc_status_rss
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t 9000 kB\nVmRSS:\t 204800 kB\nThreads:\t4\n")
    assert proc_status_rss(status) == 200.0


def test_the_notes_say_how_the_memory_run_was_scheduled(monkeypatch):
    """The memory JSON says the priority the run really had, not a fixed 'nice -n 10'."""
    import os
    monkeypatch.setattr(os, "sched_getscheduler", lambda pid: os.SCHED_IDLE)
    assert watch.scheduling().startswith("the idle scheduling class (chrt --idle 0")
    monkeypatch.setattr(os, "sched_getscheduler", lambda pid: os.SCHED_OTHER)
    monkeypatch.setattr(os, "nice", lambda increment: 10)
    assert watch.scheduling() == "nice 10"
    monkeypatch.setattr(os, "nice", lambda increment: 0)
    assert watch.scheduling() == "normal priority (nice 0)"
