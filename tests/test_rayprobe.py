"""farm/rayprobe.py: the private Ray names farm uses are where it expects them, in the Ray it pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import ray
from packaging.requirements import Requirement

from farm import rayprobe


def test_the_private_ray_names_farm_uses_are_all_there():
    # fails on a Ray release that moved or reshaped one: fix farm/rayprobe.py before widening the pin
    assert rayprobe.missing() == []


def test_a_moved_name_is_reported_by_its_full_name(monkeypatch):
    import ray._private.worker as worker

    monkeypatch.delattr(worker, "_global_node")
    assert rayprobe.missing() == ["ray._private.worker._global_node"]


def test_the_installed_ray_is_inside_the_pinned_range():
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    (pin,) = [Requirement(d) for d in project["dependencies"] if Requirement(d).name == "ray"]
    assert pin.specifier and ray.__version__ in pin.specifier, (ray.__version__, str(pin.specifier))


@pytest.mark.parametrize("env, expected", [
    ("127.0.0.2:6379", "127.0.0.2:6379"),  # RAY_ADDRESS names the cluster a bare ray.init() joins
    ("local", None),  # Ray's word for "start your own"
])
def test_bootstrap_address_is_what_a_bare_ray_init_would_join(monkeypatch, env, expected):
    monkeypatch.setenv("RAY_ADDRESS", env)
    assert rayprobe.bootstrap_address() == expected


def test_a_process_without_a_ray_connection_started_none():
    if ray.is_initialized():
        pytest.skip("this test process holds a Ray connection")
    assert not rayprobe.started_here()
