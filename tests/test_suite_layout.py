"""The suite's own layout: pytest imports each test folder's modules by basename (its default
import mode, which lets the helpers beside them be imported plainly), so two test modules with
one name in different folders would stop the whole run at collection."""

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).parent


def test_test_modules_have_names_of_their_own() -> None:
    folders: defaultdict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        folders[path.name].append(str(path.parent.relative_to(TESTS)))
    clashes = {
        name: where
        for name, where in folders.items()
        if len(where) > 1 and name not in ("conftest.py", "__init__.py")
    }
    assert clashes == {}
