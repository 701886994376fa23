"""One size parser: WxH (width first, as ffmpeg) everywhere, N where a square is meant."""
import pytest

from sritm_tf.cli import main
from sritm_tf.errors import InputError
from sritm_tf.inference import parse_tile
from sritm_tf.sizes import parse_shape, parse_size


def test_parse_size():
    assert parse_size("1920x1080") == (1920, 1080)
    assert parse_size(" 960 X 540 ") == (960, 540)
    assert parse_shape("1920x1080") == (1080, 1920)
    with pytest.raises(ValueError, match="WxH"):
        parse_size("1920")


def test_square_sizes():
    assert parse_size("64", square=True) == (64, 64) and parse_size(256, square=True) == (256, 256)
    assert parse_tile("640x360") == (360, 640) and parse_tile(40) == (40, 40) and parse_tile((12, 20)) == (12, 20)


@pytest.mark.parametrize("text", ["0x5", "5x0", "0", "-5x3", "3x-5", "-4", "x5", "5x", "5x3x2", "5by3", "", "1.5x2",
                                  None, (5, 3)])
def test_zero_negative_and_malformed_sizes_name_the_option_and_the_value(text):
    with pytest.raises(InputError) as err:
        parse_size(text, "--tile", square=True)
    assert str(err.value) == (f"--tile: expected N or WxH (width x height, positive) such as 960x540, "
                              f"got {text!r}")


def test_a_single_number_is_not_a_size_where_the_option_wants_two():
    with pytest.raises(InputError, match=r"^--size: expected WxH .*got '540'$"):
        parse_size("540", "--size")


def test_tile_pairs_must_be_positive():
    with pytest.raises(InputError, match="tile"):
        parse_tile((0, 5))


@pytest.mark.parametrize("argv, option", [(["convert", "in.png", "-o", "out.png", "--tile", "0x5"], "--tile"),
                                          (["eval", ".", "--crop", "96by128"], "--crop"),
                                          (["eval", ".", "--tile", "-3"], "--tile"),
                                          (["export", "--format", "tflite", "--input-size", "0x8", "-o", "x.tflite"],
                                           "--input-size"),
                                          (["prepare", "a.yuv", "-o", "out", "--input-size", "1920"], "--input-size"),
                                          (["bench", "speed", "--frame", "480"], "--frame")])
def test_cli_size_errors_are_one_line_naming_the_option(argv, option, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sritm {argv[0]}: error: {option}: expected ")
