"""The `sritm` console script."""
import subprocess
import sys

import pytest

from sritm_tf.cli import main


def test_help_lists_info(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    assert exit.value.code == 0 and "info" in capsys.readouterr().out


def test_no_command_is_one_line_naming_the_commands(capsys):
    """A bare `sritm` is a missing argument: exit status 2 and one line, as argparse's other errors."""
    with pytest.raises(SystemExit) as exit:
        main([])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("sritm: error: a COMMAND is needed") and "convert-batch" in lines[0]


@pytest.mark.slow
def test_info_prints_parameter_count_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-m", "sritm_tf.cli", "info", "--scale", "2"],
                         capture_output=True, text=True, check=True).stdout
    assert "2,502,595 parameters (2.50M)" in out


def test_info_tiny_pretrain(capsys):
    assert main(["info", "--scale", "4", "--channels", "8", "--m", "1", "--n", "1", "--pretrain"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "modulation=off" in line and "scale x4" in line


def test_info_gives_the_cost_of_a_4k_frame_of_each_model(capsys):
    """gflop_per_4k_frame: 2 x the convolutions' MACs for the LR of a 3840x2160 frame
    (`sritm_tf.flops`); the TV network within its 300 GFLOP budget, the full one 35x more."""
    lines = {}
    for model in ("full", "tv"):
        assert main(["info", "--scale", "2", "--model", model]) == 0
        lines[model] = capsys.readouterr().out.strip().splitlines()[-1]
    assert lines["full"].startswith("deep_sritm_x2:") and lines["full"].endswith("gflop_per_4k_frame=10384")
    tv = lines["tv"]
    assert tv.startswith("deep_sritm_tv_x2: scale x2, channels=12, m=2, n=4,") and "59,103 parameters" in tv
    assert int(tv.rsplit("=", 1)[1]) <= 300
    assert main(["info", "--scale", "4", "--model", "tv", "--channels", "8"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("deep_sritm_x4: scale x4, channels=8, m=2, n=4")


def test_bench_commands_are_the_benchmark_modules(capsys):
    """`sritm bench NAME` runs sritm_tf.benchmarks.NAME with its options."""
    import pytest

    from sritm_tf.benchmarks import tflite
    from sritm_tf.export import QUANTIZE_MODES

    for name, option in (("memory", "--precision"), ("tflite", "--pairs"), ("speed", "--engines"),
                         ("train", "--pipeline-batches"), ("pipeline", "--patch-size"), ("stream", "--sizes")):
        with pytest.raises(SystemExit) as exit_:
            main(["bench", name, "--help"])
        assert exit_.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: sritm bench {name}" in out and option in out
    assert tflite.QUANTIZE_MODES == QUANTIZE_MODES


def test_unknown_option_is_an_error(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main(["info", "--bogus"])
    assert exit_.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
