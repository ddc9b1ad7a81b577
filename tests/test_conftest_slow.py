"""The default run names each slow test as it starts (tests/conftest.py), and only slow ones."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")


def _suite(pytester: pytest.Pytester) -> None:
    """The project's conftest and a module of one slow and one other test."""
    pytester.makeconftest(CONFTEST.read_text().replace('pytest_plugins = ["pytester"]', ""))
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
    pytester.makepyfile(test_some="""
import pytest

@pytest.mark.slow
def test_long():
    pass

def test_short():
    pass
""")


def test_slow_tests_are_named_as_they_start(pytester: pytest.Pytester) -> None:
    _suite(pytester)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "slow test running: test_some.py::test_long" in out
    assert "test_short" not in out
    verbose = pytester.runpytest("-p", "no:cacheprovider", "-v").stdout.str()
    assert "slow test running" not in verbose  # -v names every test itself


def test_slow_tests_are_named_under_xdist(pytester: pytest.Pytester) -> None:
    """The default run's two workers (-n auto): the controller names the slow test, once."""
    pytest.importorskip("xdist")
    _suite(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert out.count("slow test running: test_some.py::test_long") == 1, out
    assert "test_short" not in out
