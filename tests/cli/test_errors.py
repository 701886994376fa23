"""One error hierarchy: every problem the user can fix is a SritmError, which the CLI
prints as one line with exit status 2."""
import pytest

from sritm_tf import errors
from sritm_tf.cli import main
from sritm_tf.commands import info

from tests.helpers.processes import python_env


@pytest.mark.parametrize("cls, builtin", [(errors.UserError, Exception), (errors.InputError, ValueError),
                                          (errors.SourceError, Exception), (errors.ToolError, RuntimeError)])
def test_every_error_is_a_sritm_error_and_keeps_its_builtin_ancestry(cls, builtin):
    assert issubclass(cls, errors.SritmError) and issubclass(cls, builtin)


def test_errors_stay_importable_from_their_old_modules():
    from sritm_tf.data.sources import SourceError
    from sritm_tf.imageio import InputError
    from sritm_tf.video.hdr10 import ToolError

    assert (SourceError, InputError, ToolError) == (errors.SourceError, errors.InputError, errors.ToolError)


@pytest.mark.parametrize("cls", [errors.SritmError, errors.UserError, errors.InputError,
                                 errors.SourceError, errors.ToolError])
def test_cli_prints_any_sritm_error_as_one_line_with_status_2(cls, monkeypatch, capsys):
    def fail(args):
        raise cls("thing.png: cannot use it")

    monkeypatch.setattr(info, "run", fail)
    assert main(["info"]) == 2
    assert capsys.readouterr().err == "sritm info: error: thing.png: cannot use it\n"


def test_command_modules_do_not_import_the_cli():
    import pathlib

    commands = pathlib.Path(info.__file__).parent
    for path in commands.glob("*.py"):
        assert "sritm_tf.cli" not in path.read_text(), path.name


@pytest.mark.slow
@pytest.mark.parametrize("raised, status", [("ValueError", 1), ("RuntimeError", 1), ("errors.InputError", 2)])
def test_only_sritm_errors_are_one_line_the_rest_keep_their_traceback(raised, status, tmp_path):
    """A bug in library code (a plain ValueError or RuntimeError) is shown with its traceback
    and exit status 1, never as a user error; a SritmError is one line, exit status 2."""
    import subprocess
    import sys

    from sritm_tf.pretrained import sample_path

    script = ("import sys\n"
              "from sritm_tf import convert, errors\n"
              "from sritm_tf.cli import main\n"
              "def fail(*args, **kwargs):\n"
              f"    raise {raised}('thing.png: broken inside')\n"
              "convert.convert = fail\n"
              "sys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "o.png"
    env = python_env()
    result = subprocess.run([sys.executable, "-c", script, "convert", sample_path(), "-o", str(out), "--baseline"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    if status == 2:
        assert lines == ["sritm convert: error: thing.png: broken inside"]
    else:
        assert "Traceback (most recent call last)" in result.stderr
        assert lines[-1] == f"{raised}: thing.png: broken inside"
        assert "sritm convert: error" not in result.stderr
    assert not out.exists()
