"""precision="auto": which precision this CPU gets and why, said once; the style step, the
style-transfer plan, the embedder and the command line resolve it (speed: bench/precision.py)."""
import logging

import pytest

from happyhouse import precision


@pytest.fixture
def cpu(monkeypatch):
    """Pretend to be a CPU: cpu(kind, onednn) with kind "amx", "avx512_bf16" or None."""
    def pretend(kind, onednn=True):
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)   # the CPU pretended, oneDNN not held
        monkeypatch.setattr(precision, "bfloat16_kind", lambda flags=None: kind)
        monkeypatch.setattr(precision, "onednn_enabled", lambda: onednn)
        monkeypatch.setattr(precision, "said", set())
    return pretend


def test_the_cpu_kind_comes_from_its_flags():
    assert precision.bfloat16_kind({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}) == "amx"
    assert precision.bfloat16_kind({"avx2", "avx512f", "avx512_bf16"}) == "avx512_bf16"
    assert precision.bfloat16_kind({"avx2", "fma"}) is None


def test_an_asked_precision_is_kept(cpu):
    cpu("amx", onednn=False)
    assert precision.resolve_precision("bfloat16", "embed_single") == ("bfloat16", "asked for")
    cpu(None, onednn=False)
    assert precision.resolve_precision("float32", "style") == ("float32", "asked for")
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve_precision("float16")
    with pytest.raises(ValueError, match="use must be one of"):
        precision.resolve_precision("auto", "training")


def test_auto_follows_the_cpu_and_onednn(cpu, monkeypatch):
    cpu(None)
    assert precision.resolve_precision("auto", "style") == ("float32", "the CPU has neither AMX nor AVX512-BF16")
    cpu("amx", onednn=False)
    chosen, why = precision.resolve_precision("auto", "style")
    assert chosen == "float32" and "oneDNN is off" in why
    cpu("amx")
    assert precision.resolve_precision("auto", "style")[0] == "bfloat16"
    monkeypatch.setitem(precision.BFLOAT16_WINS, "amx", {"style", "embed_batch"})
    assert precision.resolve_precision("auto", "embed_batch")[0] == "bfloat16"
    chosen, why = precision.resolve_precision("auto", "embed_single")
    assert chosen == "float32" and "calibrated decisions" in why
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    chosen, why = precision.resolve_precision("auto", "style")
    assert chosen == "float32" and why == ("the CPU has amx but oneDNN is held to AVX2 (ONEDNN_MAX_CPU_ISA), "
                                           "which has no bfloat16 kernels")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setitem(precision.BFLOAT16_WINS, "avx512_bf16", set())
    cpu("avx512_bf16")
    chosen, why = precision.resolve_precision("auto", "style")
    assert chosen == "float32" and "avx512_bf16" in why


def test_bfloat16_is_refused_where_this_process_has_no_kernels_for_it(cpu, monkeypatch):
    """Asked for where it cannot run: a ValueError saying why and what to use, before TensorFlow
    is touched (a capped oneDNN aborts the process on a bf16 convolution; without AMX or
    AVX512-BF16 TensorFlow would run float32 unasked)."""
    cpu(None)
    for refuse in (lambda: precision.resolve_precision("bfloat16", "style"),
                   lambda: precision.compute_precision("bfloat16").__enter__()):
        with pytest.raises(ValueError, match="'bfloat16' was asked for, but the CPU has neither AMX nor "
                                             "AVX512-BF16: use precision 'auto' .float32 here. or 'float32'"):
            refuse()
    cpu("avx512_bf16")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    with pytest.raises(ValueError, match="held to AVX512_CORE"):
        precision.resolve_precision("bfloat16", "embed_batch")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")   # a limit that keeps bfloat16
    assert precision.resolve_precision("bfloat16", "embed_batch") == ("bfloat16", "asked for")


def test_auto_is_said_once_per_use(cpu, caplog):
    cpu("amx")
    with caplog.at_level(logging.INFO, logger="happyhouse.precision"):
        for _ in range(3):
            assert precision.choose_precision("auto", "style") == "bfloat16"
        assert precision.choose_precision("float32", "embed_single") == "float32"   # asked: nothing to say
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("Precision (auto) for style: bfloat16 (the CPU has amx")


def test_the_command_line_says_it_on_stderr(cpu, capsys):
    cpu(None)
    precision.say_choices_on_stderr()
    try:
        precision.choose_precision("auto", "style")
    finally:
        for handler in list(precision.logger.handlers):
            precision.logger.removeHandler(handler)
        precision.logger.setLevel(logging.NOTSET)
    captured = capsys.readouterr()
    assert captured.err == "Precision (auto) for style: float32 (the CPU has neither AMX nor AVX512-BF16).\n"
    assert captured.out == ""


def test_onednn_state_is_tensorflows_own():
    import os
    state = precision.onednn_enabled()
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        assert state is False
    elif os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1":
        assert state is True


def test_the_embedder_resolves_auto_per_batch(cpu, monkeypatch):
    from happyhouse.face.embedders import load_embedder
    monkeypatch.setitem(precision.BFLOAT16_WINS, "amx", {"embed_batch"})
    cpu("amx")
    emb = load_embedder("inception-resnet-v1")
    assert emb.precision == "auto"
    assert (emb.precision_for(1), emb.precision_for(64)) == ("float32", "bfloat16")
    assert emb.with_precision("float32").precision_for(64) == "float32"
    cpu(None)
    assert emb.precision_for(64) == "float32"


def test_style_transfer_resolves_auto(cpu, caplog, capsys):
    from happyhouse.style import cli, transfer
    cpu("amx")
    assert transfer.TransferSettings().precision == "auto"
    assert cli.build_parser().parse_args(["a.jpg", "b.jpg"]).precision == "auto"
    with caplog.at_level(logging.INFO, logger="happyhouse.precision"):
        for optimizer in ("lbfgs", "adam"):           # bfloat16 for either optimiser where it wins
            assert transfer.plan_passes(transfer.TransferSettings(optimizer=optimizer), (300, 400), 32)[1] == \
                [(optimizer, "bfloat16")]
    assert [r.getMessage() for r in caplog.records] == [   # said once
        "Precision (auto) for style: bfloat16 (the CPU has amx and oneDNN is on; bfloat16 was measured faster "
        "and as good for style)."]
    assert transfer.plan_passes(transfer.TransferSettings(fast=True), (300, 400), 32)[1] == [("lbfgs", "bfloat16")] * 2
    assert " at 300x400 in bfloat16 (the CPU has amx and oneDNN is on;" in capsys.readouterr().out  # the plan's line
    assert transfer.plan_passes(transfer.TransferSettings(precision="float32"), (300, 400), 32)[1] == \
        [("adam", "float32")]
    cpu(None)
    assert transfer.plan_passes(transfer.TransferSettings(), (300, 400), 32)[1] == [("adam", "float32")]


# ------------------------------------------------------------------- oneDNN before TensorFlow's import
def test_onednn_is_asked_for_only_on_the_cpu_kinds_measured_faster(monkeypatch):
    from happyhouse import runtime
    assert runtime.cpu_kind({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16"}) == "amx"
    assert runtime.cpu_kind({"avx2", "avx512f"}) == "avx512"
    assert runtime.cpu_kind({"avx2", "fma"}) == "avx2"
    assert runtime.cpu_kind(set()) == "other"
    monkeypatch.setattr(runtime, "ONEDNN_FASTER", frozenset({"avx2"}))
    assert runtime.tf_environment({"avx2"})["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert "TF_ENABLE_ONEDNN_OPTS" not in runtime.tf_environment({"avx2", "avx512f", "amx_bf16"})
    assert runtime.tf_environment({"avx2"})["TF_CPP_MIN_LOG_LEVEL"] == "2"


def test_a_users_onednn_setting_wins(monkeypatch):
    from happyhouse import runtime
    from happyhouse.grading import execute, sandbox
    monkeypatch.setattr(runtime, "ONEDNN_FASTER", frozenset({runtime.cpu_kind()}))
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    runtime.configure_environment()
    assert runtime.os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert sandbox.environment()["TF_ENABLE_ONEDNN_OPTS"] == "0"      # the grader's kernels follow it
    assert execute.grading_env()["TF_ENABLE_ONEDNN_OPTS"] == "0"
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    runtime.configure_environment()
    assert runtime.os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert sandbox.environment()["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert execute.grading_env()["TF_ENABLE_ONEDNN_OPTS"] == "1"
