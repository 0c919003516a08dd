"""Every command shown in README.md and docs/*.md names things that exist: its program (an entry
script, the `chimpact` command, a benchmark, a module, a make target), each flag it passes (one
of that program's: docs/FLAGS.md for the entry scripts, which test_flagsdoc keeps in step with
their absl flags; argparse's add_argument for the others) and each preset."""

import pathlib
import re
import shlex

import pytest

from chimpact import commands, presets

REPO = pathlib.Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted(p for p in (REPO / "docs").glob("*.md")
                                     if p.name != "FLAGS.md")]
# absl's own flags, which every entry script takes.
ABSL = {"flagfile", "help", "helpshort", "helpfull", "helpxml", "version", "verbosity", "v",
        "log_dir", "logtostderr", "alsologtostderr", "stderrthreshold", "only_check_args"}
# A package run with -m, and the module whose argparse parser its __main__ runs.
PACKAGE_MAINS = {"chimpact.demo": "chimpact.demo.demo"}


def script_flags():
    """{script: its flags} from docs/FLAGS.md's sections."""
    found, script = {}, None
    for line in (REPO / "docs" / "FLAGS.md").read_text().splitlines():
        heading = re.match(r"## (\S+\.py)$", line)
        if heading:
            script = heading[1]
            found[script] = set(ABSL)
        flag = re.match(r"\| `--(\w+)`", line)
        if flag and script:
            found[script].add(flag[1])
    return found


def argparse_flags(path):
    """The --flags a script or module defines with argparse."""
    return set(re.findall(r"add_argument\(\s*\"--(\w+)\"", path.read_text()))


def module_file(name):
    """The file of module `name` (run with python -m), None when there is none."""
    path = REPO / (PACKAGE_MAINS.get(name, name).replace(".", "/") + ".py")
    return path if path.is_file() else None


def commands_in(page):
    """(line number, command) of each command in the page's code: indented or fenced blocks,
    continued lines joined, each part of a `;`, `&&` or `|` chain, `$(...)` included, and
    inline code that starts as a command does."""
    lines = page.read_text().splitlines()
    found, fenced, i = [], False, 0
    while i < len(lines):
        line = lines[i]
        found += [(i + 1, span) for span in re.findall(r"`((?:chimpact|python3?|make) [^`]+)`",
                                                       line)]
        if line.strip().startswith("```"):
            fenced = not fenced
            i += 1
            continue
        start = i
        if fenced or line.startswith("    "):
            text = line.strip()
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i].strip()
            text = text.split(" #")[0]
            for part in re.split(r";|&&|\||\$\(|\)|\bdo\b|\bthen\b", text):
                part = part.strip()
                if re.match(r"(chimpact|python3?|make) ", part):
                    found.append((start + 1, part))
        i += 1
    return found


def program_and_flags(command):
    """(program, [flag names]) of a command: `chimpact COMMAND`, a script, `-m MODULE` or a
    make target; the flags before a bare `--` (Beam's arguments follow it)."""
    words = shlex.split(command, posix=True) if command.count('"') % 2 == 0 else command.split()
    if words[0] == "make":
        return ("make", words[1] if len(words) > 1 else ""), []
    if words[0] == "chimpact":
        program = ("chimpact", words[1])
        rest = words[2:]
    elif words[1] == "-m":
        program, rest = ("module", words[2]), words[3:]
    else:
        program, rest = ("script", words[1]), words[2:]
    if "--" in rest:
        rest = rest[:rest.index("--")]
    return program, [w[2:].split("=")[0] for w in rest if w.startswith("--")]


def documented_commands():
    return [(page, number, command) for page in PAGES for number, command in commands_in(page)]


def test_the_pages_show_commands():
    shown = {page.name for page, _, _ in documented_commands()}
    assert {"README.md", "field.md", "frames.md", "records.md", "training.md"} <= shown


@pytest.mark.parametrize("page, number, command", documented_commands(),
                         ids=lambda value: value.name if isinstance(value, pathlib.Path) else None)
def test_every_documented_command_names_what_exists(page, number, command):
    where = f"{page.name}:{number}: {command}"
    (kind, name), used = program_and_flags(command)
    if kind == "make":
        targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M)
        assert name in targets, f"{where}: no make target {name}"
        return
    if kind == "chimpact":
        if name.startswith("--") or name in ("-h", "help") or name.isupper():
            return  # the command's own help or version, or a placeholder (COMMAND)
        assert name in commands.SCRIPTS, f"{where}: no command {name}"
        name = commands.SCRIPTS[name]
    if kind == "module":
        assert module_file(name), f"{where}: no module {name}"
        allowed = argparse_flags(module_file(name)) | {"help"}
    elif name in script_flags():
        allowed = script_flags()[name]
    else:
        path = REPO / name
        assert path.is_file(), f"{where}: no script {name}"
        allowed = argparse_flags(path) | {"help"}
    unknown = [flag for flag in used if flag not in allowed]
    assert not unknown, f"{where}: {name} has no flag --{unknown[0]}"
    for preset in re.findall(r"--preset=([\w.+-]+)", command):
        if preset != "list":
            assert presets.flags_of(preset), f"{where}: no preset {preset}"
    for flagfile in re.findall(r"--flagfile=(models/[\w.+-]+\.flags)", command):
        assert (REPO / flagfile).is_file(), f"{where}: no {flagfile}"
