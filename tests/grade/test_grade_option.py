"""`--grade GRADE_JSON` of `sritm convert`, `convert-batch`, `eval` and `train`: a bad grade file
is one line naming it, exit status 2, before TensorFlow; a good one sets --white-nits, and an
explicit --white-nits wins over it."""
import json

import cv2
import numpy as np
import pytest

from sritm_tf import cli
from sritm_tf.errors import InputError
from sritm_tf.grade import read_grade

from tests.helpers.processes import assert_refused, sritm_reporting_tensorflow


@pytest.mark.parametrize("content, problem", [
    (None, "no such grade file"),
    ("{'white_nits': 400}", "not a JSON grade file"),
    ("[400, 2]", "not list"),
    ('{"scale": 2}', "no 'white_nits'"),
    ('{"white_nits": 400}', "no 'scale'"),
    ('{"white_nits": 0, "scale": 2}', "white_nits: expected cd/m2 in (0, 10000], got 0"),
    ('{"white_nits": 20000, "scale": 2}', "got 20000"),
    ('{"white_nits": "400", "scale": 2}', "got '400'"),
    ('{"white_nits": true, "scale": 2}', "got True"),
    ('{"white_nits": 400, "scale": 3}', "scale: expected 2 or 4, got 3"),
])
def test_a_bad_grade_file_is_named_with_its_problem(tmp_path, content, problem):
    path = tmp_path / "grade.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as err:
        read_grade(path)
    assert str(err.value).startswith(f"{path}: ") and problem in str(err.value)


def test_a_grade_folder_is_refused(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        read_grade(tmp_path)


@pytest.mark.parametrize("command", ["convert", "convert-batch", "eval", "train"])
def test_a_bad_grade_file_stops_each_command_before_tensorflow(tmp_path, pairs_dir, command):
    grade = tmp_path / "grade.json"
    grade.write_text('{"white_nits": 400')  # cut short
    image = pairs_dir / "a_sdr.png"
    args = {"convert": [image, "-o", tmp_path / "o.png"], "convert-batch": [image, "-o", tmp_path / "out"],
            "eval": [pairs_dir], "train": ["--init", tmp_path / "none.npz", "--pairs", pairs_dir]}[command]
    if command == "train":  # the weights exist: the grade file is what is wrong
        args[1].write_bytes(b"")
    result = sritm_reporting_tensorflow(command, *args, "--grade", grade, tmp=tmp_path)
    assert_refused(result, command, grade, "not a JSON grade file")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["grade.json"] + (["none.npz"] if command == "train"
                                                                                   else []))


def check_args(*argv):
    args = cli.parse(cli.build_parser(), [str(a) for a in argv])
    args.check(args)
    return args


@pytest.mark.parametrize("flags, white", [([], 203.0), (["--grade", "{g}"], 350.0),
                                          (["--grade", "{g}", "--white-nits", "280"], 280.0),
                                          (["--white-nits", "280"], 280.0)])
def test_the_grade_sets_the_white_and_an_explicit_white_wins(tmp_path, pairs_dir, grade_file, flags, white):
    flags = [flag.format(g=grade_file) for flag in flags]
    image = pairs_dir / "a_sdr.png"
    assert check_args("convert", image, "-o", tmp_path / "o.png", "--baseline", *flags).white_nits == white
    assert float(check_args("eval", pairs_dir, "--baseline-only", *flags).white_nits) == white


def test_convert_with_a_grade_converts_at_its_white(tmp_path, pairs_dir, grade_file, capsys):
    """The classical conversion (the network's skip) through --grade is the one at its white."""
    image = pairs_dir / "a_sdr.png"
    outputs = {}
    for name, flags in (("grade", ["--grade", grade_file]), ("white", ["--white-nits", 350]), ("default", [])):
        outputs[name] = tmp_path / f"{name}.png"
        assert cli.main(["convert", str(image), "-o", str(outputs[name]), "--baseline", "--quiet",
                         *map(str, flags)]) == 0, capsys.readouterr().err
    grade, white, default = (cv2.imread(str(outputs[k]), cv2.IMREAD_UNCHANGED) for k in ("grade", "white", "default"))
    assert np.array_equal(grade, white)
    assert grade.mean() > default.mean() + 2000  # 350 cd/m2 is brighter than 203 in PQ codes


def test_eval_json_reports_the_grade_white(tmp_path, pairs_dir, grade_file, capsys):
    out = tmp_path / "eval.json"
    assert cli.main(["eval", str(pairs_dir), "--baseline-only", "--grade", str(grade_file), "--json", str(out)]) == 0
    capsys.readouterr()
    values = json.loads(out.read_text())
    assert values["white_nits"] == 350.0
    assert {row["white"] for row in values["rows"] if row["method"] == "bt2408"} == {350.0}
