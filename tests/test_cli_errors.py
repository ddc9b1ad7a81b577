"""The CLI's last resorts: OSError, MemoryError and unexpected exceptions are one line, never a traceback."""

from __future__ import annotations

import errno

import pytest

from edgellm import cli


def _run_with(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: BaseException,
              debug: bool = False) -> tuple[int, str]:
    import edgellm.boards as boards

    def boom() -> None:
        raise exc

    monkeypatch.setattr(boards, "load_all", boom)
    if debug:
        monkeypatch.setenv("EDGELLM_DEBUG", "1")
    else:
        monkeypatch.delenv("EDGELLM_DEBUG", raising=False)
    with pytest.raises(SystemExit) as ei:
        cli.main(["boards"])
    return int(ei.value.code), capsys.readouterr().err


def test_os_error_is_one_line_naming_the_path(monkeypatch, capsys):
    code, err = _run_with(monkeypatch, capsys, OSError(errno.ENOSPC, "No space left on device", "/x/w.bin"))
    assert code == cli.ERROR_EXIT
    assert err.strip() == "error: /x/w.bin: No space left on device"


def test_memory_error_is_one_line(monkeypatch, capsys):
    code, err = _run_with(monkeypatch, capsys, MemoryError())
    assert code == cli.ERROR_EXIT
    assert err.count("\n") == 1 and err.startswith("error: out of memory")


def test_unexpected_exception_is_one_line_with_exit_3(monkeypatch, capsys):
    code, err = _run_with(monkeypatch, capsys, RuntimeError("boom\nsecond line"))
    assert code == cli.INTERNAL_EXIT
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: internal error (RuntimeError: boom second line)")


def test_debug_env_shows_the_exception(monkeypatch, capsys):
    import edgellm.boards as boards

    monkeypatch.setattr(boards, "load_all", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    monkeypatch.setenv("EDGELLM_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["boards"])
