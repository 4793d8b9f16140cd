"""The VLC player's pieces (namespace test: tests/test_net_vlc.py): its command, its config, its parameter."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

import pytest

from nodes.client import vlc_command
from testbed.experiment import parse_experiment_params
from testbed.nodeutil import ConfigError
from testbed.schemas import parse
from testbed.schemas.client import ClientSchema


def test_vlc_runs_as_nobody_when_root():
    cmd = vlc_command(as_root=True)
    nobody = pwd.getpwnam("nobody")
    assert cmd[:5] == ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                       "--inh-caps=-all"]
    assert "cvlc" in cmd and cmd[-2:] == ["-", "vlc://quit"] and "--demuxdump-file=-" in cmd
    assert vlc_command(as_root=False)[0] == "cvlc"


def test_vlc_records_its_input_exactly(tmp_path):
    if shutil.which("cvlc") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("cvlc (vlc-bin) is required in CI: scripts/setup.sh installs it")
        pytest.skip("cvlc not installed")
    data = bytes([0x47, 0x1F, 0xFF, 0x10]) + bytes(184)  # null TS packets
    src = data * 700
    out = tmp_path / "rec.ts"
    with open(out, "wb") as rec:
        proc = subprocess.run(vlc_command(), input=src, stdout=rec, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert out.read_bytes() == src


def test_client_config_vlc_needs_pipe_mode():
    ok = parse(ClientSchema, {"name": "c", "player": True, "player_file": "/tmp/p.ts", "player_app": "vlc",
                              "player_mode": "pipe"})
    assert ok.player_app == "vlc"
    assert parse(ClientSchema, {"name": "c"}).player_app == "ffmpeg"
    with pytest.raises(ConfigError, match="player_mode must be 'pipe'"):
        parse(ClientSchema, {"name": "c", "player": True, "player_file": "/tmp/p.ts", "player_app": "vlc"})
    with pytest.raises(ConfigError):
        parse(ClientSchema, {"name": "c", "player": True, "player_file": "/tmp/p.ts", "player_app": "mplayer",
                             "player_mode": "pipe"})


def test_player_parameter():
    import experiments.smoke as smoke
    assert parse_experiment_params(smoke, ["player=vlc"])["player"] == "vlc"
    assert parse_experiment_params(smoke, ["player=ffmpeg"])["player"] is True
    assert parse_experiment_params(smoke, ["player=true"])["player"] is True
    with pytest.raises(ConfigError, match="player must be true, false, ffmpeg or vlc, got 'mplayer'"):
        parse_experiment_params(smoke, ["player=mplayer"])
