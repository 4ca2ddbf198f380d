"""The README's mock example runs as it stands: its marked code blocks, written out and run by pytest."""

import re
from pathlib import Path

from tests.support.plugin_runs import run_with_plugin

README = Path(__file__).parents[2] / "README.md"
# A fenced python block right after `<!-- readme-example: FILE -->` is the file FILE of the example.
MARKED_BLOCK = re.compile(r"<!-- readme-example: (\S+) -->\n```python\n(.*?)\n```", re.DOTALL)


def readme_example_files() -> dict[str, str]:
    return {name: code + "\n" for name, code in MARKED_BLOCK.findall(README.read_text())}


def test_the_readme_lifecycle_hook_example_passes(pytester):
    files = readme_example_files()
    assert set(files) == {"lifecycle_hook.py", "test_lifecycle_hook.py"}
    for name, code in files.items():
        (pytester.path / name).write_text(code)
    run_with_plugin(pytester).assert_outcomes(passed=3)
