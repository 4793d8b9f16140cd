"""Reproducible environment: the hashed lock covers setup.cfg, set-up installs from it, run.json records it.

Also: run.json's ``dirty`` ignores results/ (a container mounts run data over it).
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import stat
import subprocess

from packaging.requirements import Requirement

from testbed import environment
from testbed.environment import DEBIAN_PACKAGES, debian_versions, lock_sha256, parse_dpkg_query
from testbed.results import RunDir, git_info, versions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = os.path.join(ROOT, "requirements.lock")


def _lock_pins() -> dict[str, tuple[str, list[str]]]:
    """{normalized name: (version, [sha256, ...])} of requirements.lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = None
    with open(LOCK) as fh:
        for line in fh:
            m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", line)
            if m:
                current = re.sub(r"[-_.]+", "-", m.group(1)).lower()
                pins[current] = (m.group(2), [])
                continue
            m = re.search(r"--hash=sha256:([0-9a-f]{64})", line)
            if m and current:
                pins[current][1].append(m.group(1))
    return pins


def test_lock_pins_every_requirement_of_setup_cfg_with_hashes():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    reqs = [Requirement(line) for line in cfg["options"]["install_requires"].split("\n") if line.strip()]
    pins = _lock_pins()
    assert reqs and pins
    for req in reqs:
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} is in setup.cfg but not in requirements.lock: run scripts/update-lock.sh"
        version, hashes = pins[name]
        assert req.specifier.contains(version, prereleases=True), f"{req} not satisfied by the lock's {version}"
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} has no hash"
    for tool in ("pip", "setuptools", "wheel"):
        assert tool in pins  # the install tools are pinned too


def test_setup_installs_from_the_lock_with_hashes():
    text = open(os.path.join(ROOT, "scripts", "setup.sh")).read()
    assert "--require-hashes" in text and "requirements.lock" in text
    stamp = next(line for line in text.splitlines() if line.startswith("stamp="))
    assert "$LOCK" in stamp  # a new lock re-installs the virtualenv
    assert "pip install" not in text.replace("install --require-hashes", "").replace(
        "install --no-deps --no-build-isolation -e .", "")  # nothing installed unpinned
    script = os.path.join(ROOT, "scripts", "update-lock.sh")
    assert os.stat(script).st_mode & stat.S_IXUSR
    assert "--generate-hashes" in open(script).read()


def test_lock_sha256_is_the_files_hash(tmp_path):
    with open(LOCK, "rb") as fh:
        assert lock_sha256() == hashlib.sha256(fh.read()).hexdigest()
    assert lock_sha256(str(tmp_path / "none")) is None


def test_parse_dpkg_query():
    text = ("mininet\t2.3.0-1\tii \nfrr\t\tun \ntshark\t4.0.17-0+deb12u3\tii \n"
            "ffmpeg:amd64\t7:5.1.9-0+deb12u1\tii \nbroken line\n")
    assert parse_dpkg_query(text) == {"mininet": "2.3.0-1", "tshark": "4.0.17-0+deb12u3", "ffmpeg": "7:5.1.9-0+deb12u1"}


def test_debian_versions_with_a_fake_dpkg(tmp_path, monkeypatch):
    fake = tmp_path / "dpkg-query"
    fake.write_text("#!/bin/sh\nprintf 'tcpdump\\t4.99.3-1\\tii \\nnftables\\t1.0.6-2\\trc \\n'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    debian_versions.cache_clear()
    try:
        got = debian_versions(("tcpdump", "nftables", "frr"))
        assert got == {"tcpdump": "4.99.3-1", "nftables": None, "frr": None}
        monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
        debian_versions.cache_clear()
        assert debian_versions(("tcpdump",)) == {}
    finally:
        debian_versions.cache_clear()


def test_run_json_records_lock_hash_and_debian_versions(tmp_path):
    v = versions()
    assert v["requirements_lock"] == lock_sha256() and len(v["requirements_lock"]) == 64
    assert set(v["debian"]) == set(DEBIAN_PACKAGES) or v["debian"] == {}
    run = RunDir.create("smoke", {"chunks": 1}, out=str(tmp_path / "run"))
    info = json.loads(open(os.path.join(run.path, "run.json")).read())
    assert info["versions"]["requirements_lock"] == lock_sha256()
    if os.path.exists("/usr/bin/dpkg-query"):
        assert info["versions"]["debian"]["tcpdump"]  # installed by scripts/setup.sh
    assert environment.LOCK_FILE == LOCK


def test_dirty_ignores_results(tmp_path):
    repo = tmp_path / "repo"
    (repo / "results" / "reference").mkdir(parents=True)
    (repo / "results" / "reference" / "run.json").write_text("{}")
    (repo / "code.py").write_text("x = 1\n")

    def git(*args):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                       env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "init")
    assert git_info(str(repo))["dirty"] is False
    (repo / "results" / "reference" / "run.json").unlink()  # what a mount over results/ looks like
    assert git_info(str(repo))["dirty"] is False
    (repo / "code.py").write_text("x = 2\n")
    assert git_info(str(repo))["dirty"] is True
