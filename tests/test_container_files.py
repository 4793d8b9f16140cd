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
import signal
import subprocess
import time
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


def test_run_smoke_never_runs_on_the_host_network():
    code = [line for line in logical_lines(read("scripts/container/run-smoke.sh"))]
    host = [line.split("   #")[0] for line in code if re.search(r"--network[ =]host|--net[ =]host", line)]
    # only docker's image build (a private daemon has no bridge to build on); never a container run
    assert host == ["if [[ $ENGINE == docker ]]; then build+=(--network host); fi"], host
    runs = [line for line in code if line.startswith("run=(")]
    assert runs and all("--network none" in line for line in runs), runs


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


IMAGE = "localhost/corecast:smoke"


def test_one_image_name_everywhere():
    assert f"TAG={IMAGE}" in read("scripts/container/run-smoke.sh").replace(" ", "\n").splitlines() or \
        re.search(rf"\bTAG={re.escape(IMAGE)}\b", read("scripts/container/run-smoke.sh"))
    for rel in ("docs/container.md", ".github/workflows/smoke.yml", "Dockerfile"):
        names = re.findall(r"(?<![\w/.-])((?:localhost/)?corecast:smoke)\b", read(rel))
        assert names and set(names) == {IMAGE}, (rel, names)


def _host_pip_cert(env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    """Run run-smoke.sh's host_pip_cert function alone, with ``env`` (no pip: python3/python fail)."""
    script = read("scripts/container/run-smoke.sh")
    func = re.search(r"^host_pip_cert\(\) \{.*?^\}$", script, re.M | re.S).group(0)
    prog = ('die() { echo "run-smoke: $*" >&2; exit 2; }\n' + func + "\n" +
            ('python3() { return 1; }; python() { return 1; }\n' if env.pop("NO_PIP", "") else "") +
            "host_pip_cert\n")
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home")}
    return subprocess.run(["bash", "-c", prog], capture_output=True, text=True, timeout=60, env={**base, **env})


def test_pip_ca_found_like_pip_from_env_and_config_files(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    conf = tmp_path / "home" / ".config" / "pip" / "pip.conf"
    conf.parent.mkdir(parents=True)
    # PIP_CERT wins
    res = _host_pip_cert({"PIP_CERT": str(ca), "NO_PIP": "1"}, tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == str(ca)
    # no PIP_CERT, no pip on the host: the user's pip.conf, [global] cert
    conf.write_text(f"[global]\nindex-url = https://example.invalid/simple\ncert = {ca}\n")
    res = _host_pip_cert({"NO_PIP": "1", "PIP_CONFIG_FILE": str(tmp_path / "none.conf")}, tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == str(ca), res.stderr
    # PIP_CONFIG_FILE is read last: its [install] cert wins
    other = tmp_path / "other.pem"
    other.write_text("x")
    extra = tmp_path / "extra.conf"
    extra.write_text(f"[install]\ncert={other}\n")
    res = _host_pip_cert({"NO_PIP": "1", "PIP_CONFIG_FILE": str(extra)}, tmp_path)
    assert res.stdout.strip() == str(other)
    # a cert in another section does not count (what the host's own files say stays)
    conf.write_text(f"[freeze]\ncert = {ca}\n")
    res = _host_pip_cert({"NO_PIP": "1", "PIP_CONFIG_FILE": str(tmp_path / "none.conf")}, tmp_path)
    assert res.returncode == 0 and str(ca) not in res.stdout
    # PIP_CONFIG_FILE=/dev/null: no configuration file at all (as for pip), nothing printed
    res = _host_pip_cert({"NO_PIP": "1", "PIP_CONFIG_FILE": "/dev/null"}, tmp_path)
    assert res.returncode == 0 and res.stdout == ""
    # a configured bundle that is not there: one line, exit 2
    res = _host_pip_cert({"PIP_CERT": str(tmp_path / "missing.pem"), "NO_PIP": "1"}, tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not readable" in res.stderr


def test_pip_ca_through_pip_config_when_pip_is_there(tmp_path):
    py = subprocess.run(["python3", "-m", "pip", "--version"], capture_output=True)
    if py.returncode:
        pytest.skip("no pip for python3 on this host")
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\ncert = {ca}\n")
    res = _host_pip_cert({"PIP_CONFIG_FILE": str(conf)}, tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == str(ca), res.stderr


def test_pip_ca_goes_into_a_base_image_not_the_dockerfile():
    code = "\n".join(logical_lines(read("scripts/container/run-smoke.sh")))
    assert "BASE=$(with_pip_ca" in code
    assert "COPY pip.conf /etc/pip.conf" in code and "--network none" in code
    assert "-v \"$PIP_CERT" not in code  # the old podman-only mount is gone


def test_docs_quote_the_proc_sys_preflight_line():
    doc = read("docs/container.md")
    assert "`corecast: cannot write /proc/sys in a network namespace" in doc
    assert "does not catch yet" not in doc and "DaemonError" not in doc


def _docker_block() -> str:
    """run-smoke.sh's docker daemon functions, cut out to run alone."""
    script = read("scripts/container/run-smoke.sh")
    m = re.search(r"^# --- docker: a private daemon.*?^# --- end of the docker block ---$", script, re.M | re.S)
    assert m, "the docker block markers are gone"
    return m.group(0)


def test_private_dockerd_has_no_bridge_nat_or_iptables_and_its_own_paths():
    block = " ".join(logical_lines(_docker_block()))
    start = re.search(r"\bdockerd (--config-file.*?)>", block)
    assert start, "no dockerd command line"
    argv = shlex.split(start.group(1))
    for flag in ("--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false"):
        assert flag in argv, flag
    for opt in ("--data-root", "--exec-root", "--pidfile", "-H", "--config-file"):
        assert opt in argv, opt
    assert argv[argv.index("-H") + 1].startswith("$sock") and 'sock=unix://$DOCKERD_EXEC/' in block
    # installed only as Debian's docker.io, with its services kept from starting
    assert "apt-get install -y -q --no-install-recommends docker.io" in block and "exit 101" in block
    assert "trap on_exit EXIT" in read("scripts/container/run-smoke.sh")
    assert re.search(r"on_exit\(\) \{[^}]*stop_private_dockerd", read("scripts/container/run-smoke.sh"))


FAKE_DOCKERD = """#!/bin/bash
# a stand-in dockerd: makes its -H socket path a file and waits (records its argv); like containerd, it leaves
# a detached "shim" naming its exec root behind (its pid in $FAKE_LOG.shim)
echo "$@" > "$FAKE_LOG"
while (($#)); do [[ $1 == -H ]] && sock=${2#unix://}; shift; done
( (exec -a "fake-shim -address ${sock%/*}/containerd/containerd.sock" sleep 120) & echo $! > "$FAKE_LOG.shim" )
touch "$sock"; exec sleep 120
"""
FAKE_DOCKER = """#!/bin/bash
# a stand-in docker client: `version` answers when the socket (-H or DOCKER_HOST) exists; `run` blocks
host=${DOCKER_HOST:-unix:///nonexistent/docker.sock}
[[ $1 == -H ]] && { host=$2; shift 2; }
if [[ $1 == run ]]; then touch "$FAKE_LOG.running"; exec sleep 60; fi
[[ $1 == version && -e ${host#unix://} ]]
"""


def _run_docker_block(tmp_path, body: str, extra_path: bool = True) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("dockerd", FAKE_DOCKERD), ("docker", FAKE_DOCKER)):
        if extra_path or name == "docker":
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
    prog = ('set -euo pipefail\ndie() { echo "run-smoke: $*" >&2; exit 2; }\n' + _docker_block() + "\n" + body)
    path = f"{bin_dir}:/usr/bin:/bin" if extra_path else f"{bin_dir}:/bin:/usr/bin"
    env = {"PATH": path, "HOME": str(tmp_path), "FAKE_LOG": str(tmp_path / "argv"),
           "CORECAST_DOCKERD_DATA": str(tmp_path / "data"), "CORECAST_DOCKERD_EXEC": str(tmp_path / "exec")}
    return subprocess.run(["bash", "-c", prog], capture_output=True, text=True, timeout=120, env=env)


def test_private_dockerd_is_started_when_none_answers_and_stopped_after(tmp_path):
    res = _run_docker_block(tmp_path, 'ensure_docker_daemon\necho "HOST=$DOCKER_HOST PID=$dockerd_pid"\n'
                            'kill -0 "$dockerd_pid"\nstop_private_dockerd\n'
                            'if kill -0 "$dockerd_pid" 2>/dev/null; then echo ALIVE; fi\n')
    assert res.returncode == 0, res.stderr
    assert f"HOST=unix://{tmp_path}/exec/docker.sock" in res.stdout
    assert "private dockerd stopped" in res.stdout and "ALIVE" not in res.stdout
    shim = int((tmp_path / "argv.shim").read_text())
    assert not os.path.exists(f"/proc/{shim}") or open(f"/proc/{shim}/stat").read().split()[2] == "Z", \
        "the detached shim naming the exec root must be ended"
    assert not (tmp_path / "exec").exists(), "the exec root must go"
    assert (tmp_path / "data").is_dir()  # images stay for --no-build
    argv = (tmp_path / "argv").read_text().split()
    assert "--bridge=none" in argv and "--iptables=false" in argv and argv[argv.index("--data-root") + 1] == \
        str(tmp_path / "data")


def test_a_daemon_that_answers_is_used_and_left_alone(tmp_path):
    (tmp_path / "exec").mkdir()
    (tmp_path / "exec" / "docker.sock").touch()  # a private daemon from another run answers there
    res = _run_docker_block(tmp_path, 'ensure_docker_daemon\necho "PID=[$dockerd_pid] HOST=$DOCKER_HOST"\n'
                            'stop_private_dockerd\n')
    assert res.returncode == 0, res.stderr
    assert "PID=[]" in res.stdout and "already at" in res.stdout and "stopped" not in res.stdout
    assert not (tmp_path / "argv").exists(), "no second dockerd"


def test_no_dockerd_and_no_way_to_install_it_is_one_line(tmp_path):
    body = 'id() { echo 1000; }\nensure_docker_daemon\n'
    res = _run_docker_block(tmp_path, body, extra_path=False)
    if (subprocess.run(["bash", "-c", "command -v dockerd"], capture_output=True,
                       env={"PATH": "/bin:/usr/bin"}).returncode == 0):
        pytest.skip("dockerd is installed in /bin or /usr/bin here")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "install Debian's docker.io (apt-get install docker.io)" in res.stderr


def test_a_signal_during_the_run_still_stops_the_private_dockerd(tmp_path):
    code = logical_lines(read("scripts/container/run-smoke.sh"))

    def at(prefix: str) -> int:
        return next(i for i, line in enumerate(code) if line.startswith(prefix))
    call = at("if [[ $ENGINE == docker ]]; then ensure_docker_daemon; fi")
    assert at("trap on_exit EXIT") < call and at("trap 'exit 143' TERM") < call
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("dockerd", FAKE_DOCKERD), ("docker", FAKE_DOCKER)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path), "FAKE_LOG": str(tmp_path / "argv"),
           "CORECAST_DOCKERD_DATA": str(tmp_path / "data"), "CORECAST_DOCKERD_EXEC": str(tmp_path / "exec")}
    proc = subprocess.Popen([os.path.join(ROOT, "scripts/container/run-smoke.sh"), "--engine", "docker",
                             "--no-build", "--results", str(tmp_path / "results")], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "argv.running").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "argv.running").exists(), "the fake docker run never started"
        os.killpg(proc.pid, signal.SIGTERM)  # what a terminal's ^C or a CI cancel does: the whole group
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, out
    assert "private dockerd stopped" in out, out
    assert not (tmp_path / "exec").exists()
    shim = int((tmp_path / "argv.shim").read_text())
    assert not os.path.exists(f"/proc/{shim}") or open(f"/proc/{shim}/stat").read().split()[2] == "Z"
