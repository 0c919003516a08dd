"""The library's import graph: one folder a stage in the order data flows, no module importing a
later stage, no two modules importing each other directly or around a longer circle, and every
module saying its job in a docstring."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "chimpact"
# The stages in the order data flows; the base modules (errors, storage, cli, settings, runner, the
# presets) come before all, the entry programs after all.
STAGES = ("base", "data", "training", "predict", "ensemble", "field", "demo", "commands")
BASE = {"__init__", "errors", "storage", "cli", "settings", "presets", "runner"}


def stage(module):
    """The stage a module (dotted below chimpact) belongs to."""
    top = module.split(".")[0]
    return "base" if top in BASE else top


def imports():
    """{module: the chimpact modules it imports}, read from the source (ast), not by importing;
    modules of subpackages are named by their dotted path below chimpact (commands.flagsdoc), the
    package's own __init__ as "__init__"."""
    paths = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"] = path
    graph = {}
    for name, path in paths.items():
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chimpact"):
                package = node.module.partition(".")[2]
                for alias in node.names:
                    module = f"{package}.{alias.name}" if package else alias.name
                    names.add(module if module in paths else package)
            elif isinstance(node, ast.Import):
                names |= {a.name.split(".", 1)[1] for a in node.names
                          if a.name.startswith("chimpact.")}
        # Importing commands.flagsdoc runs commands/__init__.py first.
        names |= {n.rsplit(".", 1)[0] for n in names if "." in n}
        graph[name] = names - {name, ""}
    return graph


def test_no_module_imports_itself_through_others():
    graph = imports()
    assert {"predict.infer", "field", "field.jobs", "commands", "commands.flagsdoc",
            "presets"} <= set(graph)

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, (*seen, n)))
                   for n in graph.get(start, ()))

    circles = sorted(m for m in graph if reaches(m, m))
    assert circles == [], circles
    assert "predict.infer" in graph["field.distances"] and "commands" in graph["commands.flagsdoc"]


def test_every_module_is_in_a_stage_and_imports_no_later_one():
    graph = imports()
    assert {stage(m) for m in graph} == set(STAGES)
    backward = sorted(f"{m} <- {n}" for m, names in graph.items() for n in names
                      if STAGES.index(stage(n)) > STAGES.index(stage(m)))
    assert backward == [], backward
    # The field package uses predict; predict never reads field (nor does training or data).
    assert "predict.infer" in graph["field.videos"]
    assert not any(n.startswith("field") for m in graph if stage(m) == "predict"
                   for n in graph[m])


def test_every_module_says_its_job():
    silent = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                    if not (ast.get_docstring(ast.parse(path.read_text())) or "").strip())
    assert silent == [], silent


def test_the_library_holds_no_absl():
    """Flags are defined and read in the entry scripts (and chimpact_flags beside them) only:
    no module of chimpact/ imports absl, so its functions take plain values."""
    def imports_absl(path):
        return any(isinstance(node, ast.ImportFrom) and (node.module or "").startswith("absl")
                   or isinstance(node, ast.Import) and any(a.name.startswith("absl")
                                                           for a in node.names)
                   for node in ast.walk(ast.parse(path.read_text())))

    readers = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                     if imports_absl(path))
    assert readers == [], readers
    assert imports_absl(PACKAGE.parent / "run_train.py")
    assert imports_absl(PACKAGE.parent / "chimpact_flags.py")


def test_flag_values_are_read_in_the_entry_scripts_only():
    """The top-level scripts define their flags, read them (FLAGS.name) and pass plain values
    on: no module of chimpact/ names FLAGS, alone or as flags.FLAGS, or takes a flag's value
    (flag.value, flag_values.flag_values_dict())."""
    def takes_a_value(node):
        return (isinstance(node, ast.Attribute) and node.attr in ("value", "flag_values_dict")
                and isinstance(node.value, ast.Name) and "flag" in node.value.id.lower())

    def reads_flags(path):
        return any(isinstance(node, ast.Name) and node.id == "FLAGS"
                   or isinstance(node, ast.Attribute) and node.attr == "FLAGS"
                   or takes_a_value(node)
                   for node in ast.walk(ast.parse(path.read_text())))

    readers = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                     if reads_flags(path))
    assert readers == [], readers
    assert reads_flags(PACKAGE.parent / "run_train.py")
