"""The package's layout: no import cycles between its modules, no module over 500
lines, and no words of the development process in the code or the tests."""
import ast
import re

from tests.helpers.paths import REPO

PACKAGE = REPO / "sritm_tf"
MAX_LINES = 500
# Tracker numbers, review words and dates; split so that this file's own
# text does not match.
PROCESS_WORDS = re.compile("iss" r"ue ?#?[0-9]" "|" "[Rr]ed" "-team" "|" "the iss" "ue" "|" "20[0-9]{2}-[0-9]{2}-" "[0-9]{2}")


def module_files():
    """{dotted module name: path} of every module of sritm_tf (a package by its __init__.py)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(name, path, modules):
    """The modules of sritm_tf that module `name` imports, at its top level or inside
    functions: `from A import b` counts as A.b when that is a module, else as A."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import sritm_tf.a.b` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph():
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph):
    """One import cycle of `graph` as a list of modules (first == last), or None."""
    state = {}  # module -> "open" while on the current path, "done" after

    def visit(node, path):
        state[node] = "open"
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                return path[path.index(child):] + [child]
            if child not in state:
                cycle = visit(child, path + [child])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "sritm_tf.model" in graph["sritm_tf.pretrained"]  # imported inside functions
    assert "sritm_tf.errors" in graph["sritm_tf.data.gainmap"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_over_500_lines():
    long = {str(path.relative_to(REPO)): count for path in module_files().values()
            if (count := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_process_words_in_code_or_tests():
    hits = []
    for folder in (PACKAGE, REPO / "tests"):
        for path in sorted(folder.rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if PROCESS_WORDS.search(line):
                    hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not hits, "words of the development process:\n" + "\n".join(hits)
