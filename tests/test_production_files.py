"""What the production stack relies on in files: host settings merged over the committed ones, files
the containers read written 0644, crash logs in the mounted logs/ folder."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bot.adapters.store import atomic_write_text
from bot.errors import SettingsError
from bot.faults import crash_log_dir, write_crash_log
from bot.workspace import Workspace


def test_local_settings_are_merged_over_the_committed_ones(tmp_path: Path) -> None:
    (tmp_path / "chronops.toml").write_text('[search]\ntuning_origins = 6\n\n[forge]\nkind = "local"\nautomerge = false\n')
    assert Workspace.open(tmp_path).settings.forge.kind == "local"
    (tmp_path / "chronops.local.toml").write_text(
        '[forge]\nkind = "github"\n\n[deploy]\nhealth_urls = ["http://127.0.0.1:9999/healthz"]\n'
    )
    settings = Workspace.open(tmp_path).settings
    assert settings.forge.kind == "github" and settings.forge.automerge is False  # key by key
    assert settings.search.tuning_origins == 6
    assert settings.deploy.health_urls == ["http://127.0.0.1:9999/healthz"]
    (tmp_path / "chronops.local.toml").write_text("[deploy]\nhealth_url = 1\n")
    with pytest.raises(SettingsError, match=r"chronops.local.toml: unknown key 'deploy.health_url'"):
        Workspace.open(tmp_path)


def test_atomic_writes_are_readable_by_other_users(tmp_path: Path) -> None:
    path = tmp_path / "chronops.toml"
    atomic_write_text(path, "[search]\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_scaffold_and_tiny_model_files_are_readable(tmp_path: Path, tiny_t5: Path) -> None:
    from bot.commands.init import scaffold

    created, _ = scaffold(tmp_path / "ws", model_id="models/tiny")
    assert {stat.S_IMODE(p.stat().st_mode) for p in created} == {0o644}
    assert {stat.S_IMODE(p.stat().st_mode) for p in tiny_t5.rglob("*") if p.is_file()} == {0o644}


def test_crash_logs_land_in_the_mounted_logs_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert crash_log_dir() is None  # no logs/ here: the temp dir, as before
    (tmp_path / "logs").mkdir()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log = write_crash_log()
    assert log.parent == tmp_path / "logs" and "RuntimeError: boom" in log.read_text()
    monkeypatch.setenv("CHRONOPS_CRASH_DIR", str(tmp_path))
    assert crash_log_dir() == tmp_path
