"""The browser tests' Chromium: given paths win; missing binaries are installed with apt-get as
root, else the error names the packages and the variables (nothing is run then)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest

from devstack import browser


def test_given_binaries_are_used_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMIUM", "/opt/c/chromium")
    monkeypatch.setenv("CHROMEDRIVER", "/opt/c/chromedriver")
    assert browser.ensure_installed() == browser.Binaries("/opt/c/chromium", "/opt/c/chromedriver")


def test_without_root_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.delenv("CHROMEDRIVER", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr(subprocess, "run", never)
    with pytest.raises(RuntimeError) as refused:
        browser.ensure_installed()
    assert "apt-get install chromium chromium-driver" in str(refused.value)
    assert "CHROMIUM and CHROMEDRIVER" in str(refused.value)
    assert browser.main() == 2


def test_as_root_the_debian_packages_are_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.delenv("CHROMEDRIVER", raising=False)
    installed: list[list[str]] = []
    paths = {"apt-get": "/usr/bin/apt-get"}
    monkeypatch.setattr(shutil, "which", paths.get)
    monkeypatch.setattr(os, "geteuid", lambda: 0)

    def apt(argv: list[str], **kwargs: Any) -> None:
        installed.append(argv)
        if argv[1] == "install":
            paths.update(chromium="/usr/bin/chromium", chromedriver="/usr/bin/chromedriver")

    monkeypatch.setattr(subprocess, "run", apt)
    found = browser.ensure_installed()
    assert found == browser.Binaries("/usr/bin/chromium", "/usr/bin/chromedriver")
    assert installed[0] == ["apt-get", "update", "-q"]
    assert installed[1][-2:] == ["chromium", "chromium-driver"]
