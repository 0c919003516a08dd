"""docs/FLAGS.md is generated from the entry scripts' flags and kept up to date."""

import pytest

from chimpact.commands import flagsdoc

XML = """<?xml version="1.0"?><AllFlags><program>x.py</program><usage>Does x.</usage>
<flag><file>absl.app</file><name>helpfull</name><meaning>show full help</meaning>
<default>false</default></flag>
<flag><key>yes</key><file>x.py</file><name>size</name><meaning>W|H  in
 pixels</meaning><default>64</default></flag>
<flag><key>yes</key><file>x.py</file><name>out_dir</name><meaning>Where.</meaning><default></default></flag>
</AllFlags>"""


def test_section_lists_only_the_scripts_own_flags_sorted():
    section = flagsdoc.script_section("x.py", XML)
    assert section.splitlines()[:5] == ["## x.py", "", "```", "Does x.", "```"]
    assert section.splitlines()[-2:] == ["| `--out_dir` |  | Where. |",
                                         "| `--size` | `64` | W\\|H in pixels |"]
    assert "helpfull" not in section


@pytest.mark.slow
def test_flags_md_is_up_to_date():
    current = flagsdoc.OUTPUT.read_text()
    assert current == flagsdoc.flags_reference(), "docs/FLAGS.md is stale: run `make docs`"
