"""The `sritm` console script."""
import subprocess
import sys

from sritm_tf.cli import main


def test_help_lists_info(capsys):
    assert main([]) == 0
    assert "info" in capsys.readouterr().out


def test_info_prints_parameter_count_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-m", "sritm_tf.cli", "info", "--scale", "2"],
                         capture_output=True, text=True, check=True).stdout
    assert "2,502,595 parameters (2.50M)" in out


def test_info_tiny_pretrain(capsys):
    assert main(["info", "--scale", "4", "--channels", "8", "--m", "1", "--n", "1", "--pretrain"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "modulation=off" in line and "scale x4" in line


def test_bench_runs_the_benchmark_scripts_with_their_arguments(capsys):
    assert main(["bench", "memory", "--help"]) == 0
    assert "usage: bench_memory.py" in capsys.readouterr().out
    assert main(["bench", "tflite", "--help"]) == 0
    assert "usage: bench_tflite.py" in capsys.readouterr().out


def test_unknown_option_is_an_error(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main(["info", "--bogus"])
    assert exit_.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
