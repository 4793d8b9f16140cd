"""Static checks of the container smoke files (Dockerfile, workflow, scripts/container/, docs).

Nothing here builds an image or starts a container: these run in the normal
suite in well under a second. The real build is scripts/container/run-smoke.sh
(see docs/container.md).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTAINER_SCRIPTS = ["scripts/container/build-base.sh", "scripts/container/run-smoke.sh"]


def read(rel: str) -> str:
    """The text of a repository file."""
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def logical_lines(text: str) -> list[str]:
    """Lines with comments and blank lines dropped and backslash continuations joined."""
    out: list[str] = []
    cur = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1].strip() + " "
            continue
        out.append((cur + line).strip())
        cur = ""
    if cur:
        out.append(cur.strip())
    return out


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments) pairs."""
    instrs = []
    for line in logical_lines(read("Dockerfile")):
        word, _, rest = line.partition(" ")
        instrs.append((word.upper(), rest.strip()))
    return instrs


def shell_commands(run_args: str) -> list[list[str]]:
    """The simple commands of a RUN line (split on && ; ||), as argument lists."""
    return [shlex.split(part) for part in re.split(r"&&|\|\||;", run_args) if part.strip()]


def test_dockerfile_base_is_bookworm_and_overridable():
    instrs = dockerfile()
    assert instrs[0] == ("ARG", "BASE_IMAGE=debian:bookworm"), instrs[0]
    froms = [args for word, args in instrs if word == "FROM"]
    assert froms == ["${BASE_IMAGE}"]


def test_dockerfile_runs_setup_sh_after_copying_the_repo():
    instrs = dockerfile()
    words = [w for w, _ in instrs]
    copy_at = instrs.index(("COPY", ". ."))
    setup_at = [i for i, (w, a) in enumerate(instrs)
                if w == "RUN" and any(cmd[:1] == ["scripts/setup.sh"] for cmd in shell_commands(a))]
    assert setup_at, "no RUN scripts/setup.sh"
    assert setup_at[0] > copy_at
    workdir_at = words.index("WORKDIR")
    assert workdir_at < copy_at


def test_dockerfile_installs_procps_and_make():
    runs = " ".join(a for w, a in dockerfile() if w == "RUN")
    installs = [cmd for cmd in shell_commands(runs) if cmd[:2] == ["apt-get", "install"]]
    pkgs = {p for cmd in installs for p in cmd[2:] if not p.startswith("-")}
    assert {"procps", "make"} <= pkgs, pkgs


def test_dockerfile_cmd_is_make_smoke():
    cmds = [a for w, a in dockerfile() if w == "CMD"]
    assert cmds, "no CMD"
    assert json.loads(cmds[-1]) == ["make", "smoke"]
    assert dockerfile()[-1][0] == "CMD"


@pytest.mark.parametrize("token", ["PIP_CERT", "pip.conf", "ca-certificates.crt", "CONTAINERS_CONF",
                                   "runc", "ulimit", "localhost/", "--network"])
def test_dockerfile_has_no_vm_workarounds(token):
    body = "\n".join(logical_lines(read("Dockerfile")))
    assert token not in body, f"VM-only workaround {token!r} belongs in scripts/container/, not the Dockerfile"


def test_dockerignore_keeps_host_state_out():
    lines = logical_lines(read(".dockerignore"))
    assert ".venv/" in lines or ".venv" in lines
    assert any(line.startswith("results") for line in lines)
    assert ".git" not in lines and ".git/" not in lines, "run.json records the commit from .git"


def test_makefile_has_smoke_target_after_setup():
    rules = {m.group(1): m.group(2).split() for m in re.finditer(r"^([\w-]+):(.*)$", read("Makefile"), re.M)}
    assert "smoke" in rules and "setup" in rules["smoke"]


def workflow_text() -> str:
    return read(".github/workflows/smoke.yml")


def test_workflow_triggers_on_push_and_pull_request():
    text = workflow_text()
    on = re.search(r"^on:\s*\n((?:[ \t]+.*\n|\s*\n)+)", text, re.M)
    assert on, "no top-level on: block"
    triggers = {m.group(1) for m in re.finditer(r"^\s+([\w-]+):", on.group(1), re.M)}
    assert {"push", "pull_request"} <= triggers, triggers


def test_workflow_builds_and_runs_make_smoke_privileged():
    lines = logical_lines(workflow_text())
    builds = [line for line in lines if re.search(r"\bdocker build\b", line)]
    assert builds, "the workflow does not build the image"
    runs = [shlex.split(line[line.index("docker run"):]) for line in lines if "docker run" in line]
    smoke = [argv for argv in runs if argv[-2:] == ["make", "smoke"]]
    assert smoke, f"no `docker run ... make smoke` in {runs}"
    argv = smoke[0]
    assert "--privileged" in argv
    assert "host" not in [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--network"]


def test_workflow_uploads_results():
    text = workflow_text()
    assert re.search(r"uses:\s*actions/upload-artifact@v\d", text)
    assert re.search(r"path:\s*results/?\s*$", text, re.M)
    assert re.search(r"if:\s*always\(\)", text), "results must be uploaded when the smoke fails too"


@pytest.mark.parametrize("rel", CONTAINER_SCRIPTS + ["scripts/setup.sh", "scripts/preflight.sh"])
def test_scripts_are_executable_and_parse(rel):
    path = os.path.join(ROOT, rel)
    assert os.access(path, os.X_OK), f"{rel} is not executable"
    res = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_run_smoke_never_uses_host_network():
    code = [line for line in logical_lines(read("scripts/container/run-smoke.sh"))]
    assert not any(re.search(r"--network[ =]host|--net[ =]host", line) for line in code)
    assert any("--network none" in line for line in code)


def test_run_smoke_help_and_bad_option():
    script = os.path.join(ROOT, "scripts/container/run-smoke.sh")
    res = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and "Usage:" in res.stdout
    res = subprocess.run([script, "--bogus"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("run-smoke: unknown option")
    res = subprocess.run([script, "--privileges", "some"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "full, none or no-tun" in res.stderr


def test_containers_conf_sets_runc_and_ulimits():
    with open(os.path.join(ROOT, "scripts/container/containers.conf"), "rb") as f:
        conf = tomllib.load(f)
    assert conf["engine"]["runtime"] == "runc"
    limits = dict(item.split("=", 1) for item in conf["containers"]["default_ulimits"])
    soft, hard = (int(v) for v in limits["nofile"].split(":"))
    assert soft <= hard <= 20000, "nofile must stay within the VM's hard limit"
    assert "nproc" in limits


def test_docs_quote_the_preflight_messages_verbatim():
    doc = read("docs/container.md")
    preflight = read("scripts/preflight.sh")
    quoted = re.findall(r"`corecast: ([^`]+)`", doc)
    assert len(quoted) >= 2, "docs/container.md should quote the preflight's messages"
    for msg in quoted:
        assert msg in preflight, f"docs/container.md quotes a message preflight.sh does not print: {msg!r}"


def test_docs_give_the_run_flags():
    doc = read("docs/container.md")
    for needle in ["--privileged", "--network none", "--device /dev/net/tun", "--cap-drop SYS_RESOURCE",
                   "seccomp=unconfined", "systempaths=unconfined", "default_ulimits", "debootstrap"]:
        assert needle in doc, needle
