"""Sweeps on disk (loadgen/service/store.py): saved states, and what a restart finds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from loadgen.service.security import valid_sweep_id
from loadgen.service.store import RESTARTED, Store, SweepState, new_sweep_id

NOW = datetime(2026, 12, 2, 19, 3, 59, tzinfo=UTC)


def state(store: Store, status: str) -> SweepState:
    """A saved sweep in `status`."""
    saved = SweepState(new_sweep_id(NOW), status, NOW.isoformat(), {"load": {}})  # type: ignore[arg-type]
    store.save(saved)
    return saved


def test_ids_are_valid_time_ordered_and_distinct() -> None:
    ids = {new_sweep_id(NOW) for _ in range(50)}
    assert len(ids) == 50
    assert all(
        valid_sweep_id(sweep_id) and sweep_id.startswith("20261202-190359-") for sweep_id in ids
    )


def test_a_restart_fails_the_cut_sweeps_and_keeps_the_rest(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sweeps = {
        status: state(store, status) for status in ("queued", "running", "cancelling", "succeeded")
    }
    (tmp_path / "not-a-sweep").mkdir()
    (tmp_path / "not-a-sweep" / "sweep.json").write_text("{}")
    (tmp_path / new_sweep_id(NOW)).mkdir()  # made, then the process died before its first save
    found = {found.id: found for found in Store(tmp_path).recover()}
    assert set(found) == {saved.id for saved in sweeps.values()}
    assert found[sweeps["queued"].id].status == "queued"
    assert found[sweeps["succeeded"].id].status == "succeeded"
    for cut in ("running", "cancelling"):
        assert found[sweeps[cut].id].status == "failed"
        assert found[sweeps[cut].id].error == RESTARTED
    # ... and saved so: a second restart finds them failed.
    again = {found.id: found.status for found in Store(tmp_path).load_all()}
    assert again[sweeps["running"].id] == "failed"


def test_ids_that_are_not_the_service_s_never_reach_the_disk(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for bad in ("..", "../x", "/etc", "20261202-190359-8bdbe5dd/../.."):
        with pytest.raises(ValueError, match="not a sweep id"):
            store.folder(bad)


def test_delete_removes_the_folder(tmp_path: Path) -> None:
    store = Store(tmp_path)
    saved = state(store, "succeeded")
    store.delete(saved.id)
    assert not (tmp_path / saved.id).exists()
    assert store.load_all() == []
