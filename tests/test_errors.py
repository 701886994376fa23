"""One error hierarchy: every problem the user can fix is a SritmError, which the CLI
prints as one line with exit status 2."""
import pytest

from sritm_tf import errors
from sritm_tf.cli import main
from sritm_tf.commands import info


@pytest.mark.parametrize("cls, builtin", [(errors.UserError, Exception), (errors.InputError, ValueError),
                                          (errors.SourceError, Exception), (errors.ToolError, RuntimeError)])
def test_every_error_is_a_sritm_error_and_keeps_its_builtin_ancestry(cls, builtin):
    assert issubclass(cls, errors.SritmError) and issubclass(cls, builtin)


def test_errors_stay_importable_from_their_old_modules():
    from sritm_tf.data.sources import SourceError
    from sritm_tf.imageio import InputError
    from sritm_tf.video import ToolError

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
