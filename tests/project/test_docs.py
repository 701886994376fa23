"""The documentation stays a front door: README.md and MODEL_CARD.md are short, every
relative link in them and in docs/ leads somewhere, and every `sritm ...` command the
README shows is one the CLI accepts."""
import glob
import os
import re
import shlex

import pytest

from tests.helpers.paths import REPO

MAX_BYTES = {"README.md": 15_000, "MODEL_CARD.md": 20_000}  # the card holds four networks
DOCS = ["README.md", "MODEL_CARD.md"] + sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True))

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`[^`]*`")
SHELL_FENCES = {"bash", "sh", "shell", "console"}


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


def prose_lines(text):
    """The lines of `text` outside fenced code blocks, inline code removed."""
    inside = False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            yield INLINE_CODE.sub("", line)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    """Every heading anchor of a markdown file, duplicates numbered as GitHub does."""
    seen = {}
    result = set()
    for line in prose_lines(read(path)):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links(path):
    for line in prose_lines(read(path)):
        for target in LINK.findall(line):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                yield target


@pytest.mark.parametrize("path", ["README.md", "MODEL_CARD.md"])
def test_front_pages_are_short(path):
    size = os.path.getsize(os.path.join(REPO, path))
    assert size <= MAX_BYTES[path], f"{path} is {size} bytes, more than {MAX_BYTES[path]}"


@pytest.mark.parametrize("path", DOCS)
def test_relative_links_resolve(path):
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if not os.path.exists(os.path.join(REPO, linked)):
            broken.append(f"{target}: no such file")
        elif anchor and linked.endswith(".md") and anchor.lower() not in anchors(linked):
            broken.append(f"{target}: no heading with that anchor in {linked}")
    assert not broken, f"{path}: " + "; ".join(broken)


def substitute_commands(line):
    """`line` with every `$(...)` (nested parentheses included) replaced by one word."""
    out, depth, i = [], 0, 0
    while i < len(line):
        if line.startswith("$(", i):
            if depth == 0:
                out.append("SUBSTITUTED")
            depth += 1
            i += 2
            continue
        if depth:
            depth += {"(": 1, ")": -1}.get(line[i], 0)
        else:
            out.append(line[i])
        i += 1
    return "".join(out)


def shell_commands(text):
    """The logical lines (backslash continuations joined) of the README's shell code blocks."""
    inside, shell, pending = False, False, ""
    for line in text.splitlines():
        match = FENCE.match(line)
        if match:
            inside = not inside
            shell = inside and line.strip().lstrip("`~").strip().lower() in SHELL_FENCES
            pending = ""
            continue
        if not (inside and shell):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield (pending + line).strip()
        pending = ""


def sritm_invocations(line):
    """The argument lists of every `sritm` command in a shell line (after `&&`, `;`, `|`;
    environment assignments before it skipped; comments dropped)."""
    if line.startswith("$ "):
        line = line[2:]
    lexer = shlex.shlex(substitute_commands(line), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    words = list(lexer)
    commands, current = [], []
    for word in words:
        if word and set(word) <= set(";&|"):
            commands.append(current)
            current = []
        else:
            current.append(word)
    commands.append(current)
    for words in commands:
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]
        if words and os.path.basename(words[0]) == "sritm":
            yield words[1:]


def readme_sritm_lines():
    lines = []
    for line in shell_commands(read("README.md")):
        for argv in sritm_invocations(line):
            lines.append((line, argv))
    return lines


def test_readme_shows_sritm_commands():
    assert len(readme_sritm_lines()) >= 10


@pytest.mark.parametrize("line, argv", readme_sritm_lines(), ids=lambda v: v if isinstance(v, str) else None)
def test_readme_sritm_commands_parse(line, argv):
    """Parsed as `sritm` parses them: unknown options are an error (a command that passes options
    on, `sritm convert-batch`, takes Apache Beam's after a bare --)."""
    from sritm_tf.cli import build_parser, parse

    try:
        args = parse(build_parser(), argv)
    except SystemExit:
        pytest.fail(f"README command does not parse: {line}")
    assert getattr(args, "func", None), f"README command names no subcommand: {line}"


def test_every_test_named_in_the_reliability_page_exists():
    """docs/reliability.md backs each README promise with named tests: `tests/<area>/test_x.py::test_y`,
    and bare `test_y` names after it in the same cell, from that file."""
    text = open(REPO / "docs" / "reliability.md").read()
    named = 0
    for cell in re.findall(r"\|([^|\n]*tests/[^|\n]*)\|\s*$", text, flags=re.M):
        current = None
        for token in re.findall(r"`([^`]+)`", cell):
            path, _, name = token.rpartition("::")
            current = path or current
            source = open(REPO / current).read()
            assert re.search(rf"^def {re.escape(name)}\(", source, flags=re.M), f"{current}::{name} is not a test"
            named += 1
    assert named >= 30, named
