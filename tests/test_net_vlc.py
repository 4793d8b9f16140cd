"""Namespace test: VLC as a second real player (issue 17), like the ffmpeg player test in test_net_corecast.py.

``player=vlc``: one client host runs ``cvlc`` (Debian's vlc-bin) as ``nobody`` (VLC
refuses root) in its namespace; the client receives the stream through each mode
and pipes it to VLC, which records it; ffprobe decodes the recording and finds
as many frames as in what the source sent.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from conftest import corecast, leftovers

pytestmark = pytest.mark.net


def test_vlc_player_decodes_every_frame_through_both_modes(tmp_path):
    assert shutil.which("cvlc"), "cvlc (vlc-bin) is required: scripts/setup.sh installs it"
    out = tmp_path / "vlc"
    res = corecast("run", "smoke", "--out", str(out), "--set", "ases=1", "--set", "clients=2", "--set", "chunks=250",
                   "--set", "speed=4", "--set", "player=vlc", "--set", "content=ffmpeg", "--set", "keep_records=true",
                   timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    df = pd.read_csv(out / "measurements.csv").set_index("mode")
    for mode in ("unicast", "corecast"):
        assert df.loc[mode, "source_frames"] > 0
        assert df.loc[mode, "player_frames"] == df.loc[mode, "source_frames"], mode
        configs = [json.loads(p.read_text()) for p in (out / "config").glob(f"smoke-{mode}-*.json")]
        players = [c for c in configs if c.get("player")]
        assert [c.get("player_app") for c in players] == ["vlc"], players
    assert leftovers() == ([], [])
