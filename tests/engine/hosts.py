"""Extra Docker hosts on this one machine, for the multi-host tests.

Layout
------
Each extra host is a real `dockerd` in a network namespace of its own. The namespaces hang off
one private Linux bridge in the root namespace, `dograh-hosts0`, on 10.210.0.0/24:

    root namespace (the main host)   10.210.0.1 on dograh-hosts0; its own ordinary dockerd
                                     (started elsewhere, plain `dockerd`) publishes ports here
    host number n (n = 2, 3, ...)    network namespace `dograh-test-<name>`; a veth pair,
                                     `dgt-<name>` on the bridge and `eth0` inside, with
                                     10.210.0.<n>/24 and a default route via 10.210.0.1

The hosts are numbered in the order they are named: the first is .2, the second .3, and so on.
Host n's dockerd has its own default bridge, `--bip 10.211.<n>.1/24`, and its own pool for
user-defined networks, `--default-address-pool base=10.<220+n>.0.0/16,size=24` (10.222/16 for
the first host, 10.223/16 for the second, ...): none of these overlap each other, the private
bridge, or the root engine's default pools (172.17-172.31/16 and 192.168/16).

Each dockerd has its own `--data-root` (/var/lib/dograh-test-hosts/<name>, kept between runs so
the images loaded into it survive; containers, user networks and volumes are removed at every
start and stop, so each run begins with hosts that hold images only), and its own exec-root,
pidfile and socket under /run/dograh-test-hosts/<name> (wiped at every start and stop; the
dockerd.log and sshd.log there stay after a run, until the next one starts). Its containers go
in the cgroup `/dograh-test-hosts-<name>`, so leftovers of an interrupted run can be found, and
it uses the containerd namespace `dograh-test-<name>`: each dockerd starts a containerd of its
own, unless a system containerd listens on /run/containerd/containerd.sock, which they would
then all share, kept apart by those namespaces.

Why `nsenter --net=/run/netns/<ns> dockerd`
    `ip netns exec` also gives the command a fresh mount namespace with /sys remounted for that
    network namespace, which hides the cgroup mounts under /sys/fs/cgroup that dockerd needs.
    `nsenter --net` only switches the network namespace (and execs dockerd, so the process we
    start is dockerd itself). Everything else (filesystem, cgroups, UTS) is the machine's: all
    hosts report the machine's hostname, and their engine ID comes from the shared
    /etc/docker/key.json.

Why one FORWARD rule in the root namespace
    br_netfilter makes frames bridged between two ports of `dograh-hosts0` go through the root
    namespace's iptables FORWARD chain, whose policy the root engine sets to DROP. A container
    on one extra host could then not reach a port another extra host publishes. One
    `iptables -I FORWARD -i dograh-hosts0 -o dograh-hosts0 -j ACCEPT` lets them (added only if
    `iptables -C` does not find it, removed on exit). Traffic between an extra host and the
    root namespace (10.210.0.1, or the root engine's containers: the root engine's own FORWARD
    rules accept what its containers send out and what its published ports receive) needs no
    rule; net.ipv4.ip_forward is set to 1 in the root namespace if it is not (and left so).
    Enter `test_hosts()` before the root engine publishes anything on 10.210.0.1: the address
    must exist when docker binds it.

SSH hosts
    A host named in `ssh_hosts` is reached at `ssh://root@10.210.0.<n>`, the way a real remote
    Docker host is. A separate sshd (not the system service) runs inside its namespace, listening
    on 10.210.0.<n>:22 only, with its own host key, root login by key only, and the client key
    this module generates. The namespaces share the root filesystem, so a `docker` command run
    over ssh would talk to the root engine's /var/run/docker.sock; the sshd config's
    `SetEnv DOCKER_HOST=unix:///run/dograh-test-hosts/<name>/docker.sock` makes it talk to that
    host's engine (`docker system dial-stdio`, which every ssh client of Docker runs remotely).

    The client side must work without questions for the docker SDK (`use_ssh_client=True`
    runs `ssh` from PATH), for the `docker` CLI run as a subprocess with
    DOCKER_HOST=ssh://root@10.210.0.<n>, and for any Go program that uses Docker's connhelper
    (also `ssh` from PATH). OpenSSH reads ~/.ssh/config from the password database's home, not
    from $HOME, so instead a wrapper script named `ssh` (which runs
    `/usr/bin/ssh -F <our ssh_config> "$@"`) goes into a directory put first on
    os.environ["PATH"] while the context manager is active; processes started meanwhile
    inherit it. That ssh_config names the generated key, a known_hosts file of our own
    (StrictHostKeyChecking accept-new: host keys are new every run), BatchMode and a short
    ConnectTimeout. The key material lives under /run/dograh-test-hosts/ssh and is deleted on
    exit.

Debian packages: docker.io (dockerd, containerd, runc, docker-proxy and a docker CLI),
iproute2, iptables, util-linux (nsenter), and for ssh hosts openssh-server and openssh-client.
Python, for ssh hosts: paramiko (docker-py imports it for any ssh:// URL, even when
use_ssh_client=True makes it run the ssh binary instead).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

PRIVATE_BRIDGE = "dograh-hosts0"
PRIVATE_ADDRESS = "10.210.0.1"  # the root namespace (main host) on the bridge
PRIVATE_PREFIX_LENGTH = 24
RUN_DIR = Path("/run/dograh-test-hosts")
DATA_DIR = Path("/var/lib/dograh-test-hosts")
SSH_DIR = RUN_DIR / "ssh"
NETNS_PREFIX = "dograh-test-"
VETH_PREFIX = "dgt-"  # the root end of a host's veth pair: dgt-<name>
VETH_PEER_PREFIX = "dgp-"  # its other end until it is moved into the namespace as eth0
CGROUP_PREFIX = "dograh-test-hosts-"
SSH_USER = "root"
FIRST_HOST_NUMBER = 2
MAX_HOSTS = 30
ENGINE_START_TIMEOUT = 60.0
ENGINE_STOP_TIMEOUT = 120.0
FORWARD_RULE = ["FORWARD", "-i", PRIVATE_BRIDGE, "-o", PRIVATE_BRIDGE, "-j", "ACCEPT"]

# The programs this module runs, and the Debian package each comes from.
REQUIRED_TOOLS = {
    "dockerd": "docker.io",
    "containerd": "containerd",
    "docker": "docker.io",
    "ip": "iproute2",
    "iptables": "iptables",
    "nsenter": "util-linux",
}
SSH_TOOLS = {"sshd": "openssh-server", "ssh": "openssh-client", "ssh-keygen": "openssh-client"}
SSHD = "/usr/sbin/sshd"
SSH = "/usr/bin/ssh"

# The names of our processes that a cleanup may find without a handle on them (those of an
# interrupted run): one of these, with our run directory on its command line.
_PROGRAMS = ("dockerd", "containerd", "docker-proxy", "sshd", "runc")
_NAME = re.compile(r"[a-z][a-z0-9]{0,10}")


def _host_number(index: int) -> int:
    return FIRST_HOST_NUMBER + index


@dataclass
class TestHost:
    """One extra Docker host: a dockerd in network namespace `netns`, at `address`."""

    __test__ = False  # not a pytest test class

    name: str  # e.g. "h2"
    address: str  # e.g. "10.210.0.2"
    docker_url: str  # unix:///run/dograh-test-hosts/h2/docker.sock, or ssh://root@10.210.0.3
    netns: str
    number: int = 0  # n in 10.210.0.<n>
    _process: subprocess.Popen[bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def run_dir(self) -> Path:
        return RUN_DIR / self.name

    @property
    def data_root(self) -> Path:
        return DATA_DIR / self.name

    @property
    def socket_path(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def local_url(self) -> str:
        """The engine's own socket, reachable from this machine whatever `docker_url` is."""
        return f"unix://{self.socket_path}"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "dockerd.log"

    @property
    def is_ssh(self) -> bool:
        return self.docker_url.startswith("ssh://")

    def client(self, timeout: int = 120) -> docker.DockerClient:
        """A client of this host's engine through `docker_url` (over ssh for an ssh host)."""
        if self.is_ssh:
            return docker.DockerClient(
                base_url=self.docker_url, use_ssh_client=True, timeout=timeout
            )
        return docker.DockerClient(base_url=self.docker_url, timeout=timeout)

    def local_client(self, timeout: int = 120) -> docker.DockerClient:
        """A client through the engine's unix socket, bypassing ssh."""
        return docker.DockerClient(base_url=self.local_url, timeout=timeout)

    def engine_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start_engine(self) -> None:
        """Start dockerd (if it is not running) and wait until it answers a ping."""
        self._spawn_engine()
        self._await_engine()

    def stop_engine(self) -> None:
        """SIGTERM dockerd (it stops its containers first) and wait until it and its containerd
        exited. The namespace, its address and its sshd stay: a host whose engine is down."""
        self._signal_engine()
        self._await_engine_exit()

    def _dockerd_argv(self) -> list[str]:
        n = self.number
        return [
            "nsenter",
            f"--net=/run/netns/{self.netns}",
            shutil.which("dockerd") or "dockerd",
            "--config-file",
            str(self.run_dir / "daemon.json"),
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.run_dir / "exec"),
            "--pidfile",
            str(self.run_dir / "docker.pid"),
            "-H",
            self.local_url,
            "--bip",
            f"10.211.{n}.1/24",
            "--default-address-pool",
            f"base=10.{220 + n}.0.0/16,size=24",
            "--cgroup-parent",
            f"/{CGROUP_PREFIX}{self.name}",
            "--containerd-namespace",
            f"{NETNS_PREFIX}{self.name}",
            "--containerd-plugins-namespace",
            f"{NETNS_PREFIX}{self.name}-plugins",
        ]

    def _spawn_engine(self) -> None:
        if self.engine_running():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "daemon.json").write_text("{}\n")  # not /etc/docker/daemon.json
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._dockerd_argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal leaves it to our teardown
            )

    def _await_engine(self, timeout: float = ENGINE_START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"dockerd of {self.name} exited:\n{_tail(self.log_path)}")
            with contextlib.suppress(docker.errors.DockerException, OSError):
                probe = docker.APIClient(base_url=self.local_url, timeout=5)
                try:
                    if probe.ping():
                        return
                finally:
                    probe.close()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"dockerd of {self.name} did not answer in {timeout:.0f} s:\n"
                    f"{_tail(self.log_path)}"
                )
            time.sleep(0.1)

    def _signal_engine(self) -> None:
        if self.engine_running():
            assert self._process is not None
            self._process.send_signal(signal.SIGTERM)

    def _await_engine_exit(self, timeout: float = ENGINE_STOP_TIMEOUT) -> None:
        process = self._process
        if process is None:
            return
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._process = None
        # dockerd stops its containerd on the way out; wait for it (and the shims) to be gone
        # so a start right after does not meet them.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
            _comm(pid).startswith(("containerd", "docker-proxy")) for pid in _netns_pids(self.netns)
        ):
            time.sleep(0.1)


@contextmanager
def test_hosts(
    names: Sequence[str] = ("h2", "h3"), ssh_hosts: Sequence[str] = ("h3",)
) -> Iterator[list[TestHost]]:
    """Bring up one extra Docker host per name (the first at 10.210.0.2, the next .3, ...),
    those in `ssh_hosts` reached over ssh, and yield them. On exit everything this started is
    stopped and the namespaces, veths, bridge and FORWARD rule are removed. Leftovers of an
    earlier run that was interrupted are cleaned up first."""
    names = list(names)
    _check_arguments(names, ssh_hosts)
    _check_tools(ssh=bool(ssh_hosts))
    hosts = [
        TestHost(
            name=name,
            address=f"10.210.0.{_host_number(i)}",
            docker_url=(
                f"ssh://{SSH_USER}@10.210.0.{_host_number(i)}"
                if name in ssh_hosts
                else f"unix://{RUN_DIR / name / 'docker.sock'}"
            ),
            netns=f"{NETNS_PREFIX}{name}",
            number=_host_number(i),
        )
        for i, name in enumerate(names)
    ]
    sshds: list[subprocess.Popen[bytes]] = []
    saved_path = os.environ.get("PATH")
    made_sshd_dir = False
    try:
        _cleanup()
        _remove(RUN_DIR)  # with the logs of the last run, which the cleanup keeps
        _make_bridge()
        for host in hosts:
            _make_namespace(host)
        for host in hosts:
            host._spawn_engine()
        for host in hosts:
            host._await_engine()
            _reset_engine(host)
        if ssh_hosts:
            _quiet_ssh_close()
            made_sshd_dir = not Path("/run/sshd").exists()
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation
            bin_dir = _make_ssh_client()
            for host in hosts:
                if host.is_ssh:
                    sshds.append(_start_sshd(host))
            for host in hosts:
                if host.is_ssh:
                    _await_port(host.address, 22, sshds)
            os.environ["PATH"] = f"{bin_dir}{os.pathsep}{saved_path or os.defpath}"
        for host in hosts:
            client = host.client(timeout=30)
            try:
                client.ping()
            finally:
                client.close()
        yield hosts
    finally:
        if saved_path is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved_path
        for host in hosts:
            if host.engine_running():
                with contextlib.suppress(docker.errors.DockerException, OSError):
                    _reset_engine(host)
        for host in hosts:
            host._signal_engine()
        for sshd in sshds:
            if sshd.poll() is None:
                sshd.terminate()
        for host in hosts:
            host._await_engine_exit()
        for sshd in sshds:
            try:
                sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sshd.kill()
                sshd.wait()
        _cleanup()
        if made_sshd_dir:
            with contextlib.suppress(OSError):
                Path("/run/sshd").rmdir()


test_hosts.__test__ = False  # type: ignore[attr-defined]  # not a pytest test function


def _quiet_ssh_close() -> None:
    """docker-py's SSHSocket.close writes to its ssh process's stdin, which raises
    BrokenPipeError when that process has exited already (its session ended: the host's engine
    or sshd stopped). A connection in use when that happened (say the log stream of a
    `containers.run`) is closed by urllib3's finalizers at interpreter exit, which then print a
    traceback for nothing: the connection is gone either way. Let such a close pass quietly."""
    global _ssh_close_quieted
    if _ssh_close_quieted:
        return
    from docker.transport import sshconn

    loud = sshconn.SSHSocket.close

    def close(self: Any) -> None:
        with contextlib.suppress(BrokenPipeError):
            loud(self)

    sshconn.SSHSocket.close = close
    _ssh_close_quieted = True


_ssh_close_quieted = False


def load_images(
    source: docker.DockerClient, references: Sequence[str], hosts: Sequence[TestHost]
) -> dict[str, float]:
    """Copy images from the `source` engine into each host's engine the way one does without a
    registry, `docker save | docker load`, streamed: the source's export goes chunk by chunk
    into the host's load. A host that already has a reference as the same image id is skipped
    for it (one that has the id under another name only gets the tag). All of a host's missing
    references go in one export, so the layers they share are sent once. Returns the seconds
    spent per host name."""
    wanted = {reference: source.api.inspect_image(reference)["Id"] for reference in references}
    spent: dict[str, float] = {}
    for host in hosts:
        started = time.monotonic()
        target = host.client()
        try:
            missing = []
            for reference, image_id in wanted.items():
                if _image_id(target, reference) == image_id:
                    continue
                if _image_id(target, image_id) == image_id and _taggable(reference):
                    repository, tag = _split_reference(reference)
                    target.api.tag(image_id, repository, tag)
                    continue
                missing.append(reference)
            if missing:
                _stream_images(source, target, missing)
                for reference in missing:
                    if _image_id(target, reference) != wanted[reference]:
                        raise RuntimeError(f"{reference} did not load into {host.name}")
        finally:
            target.close()
        spent[host.name] = time.monotonic() - started
    return spent


def _stream_images(
    source: docker.DockerClient, target: docker.DockerClient, references: Sequence[str]
) -> None:
    # GET /images/get?names=a&names=b is `docker save a b`; the SDK's get_image takes one name.
    response = source.api._get(
        source.api._url("/images/get"), params={"names": list(references)}, stream=True
    )
    chunks = source.api._stream_raw_result(response, 2 * 1024 * 1024, False)
    for message in target.api.load_image(chunks):
        if isinstance(message, dict) and ("error" in message or "errorDetail" in message):
            raise RuntimeError(f"docker load failed: {message}")


def _image_id(client: docker.DockerClient, reference: str) -> str | None:
    try:
        return str(client.api.inspect_image(reference)["Id"])
    except docker.errors.ImageNotFound:
        return None


def _taggable(reference: str) -> bool:
    return "@" not in reference and not reference.startswith("sha256:")


def _split_reference(reference: str) -> tuple[str, str]:
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        return reference, "latest"
    return repository, tag


def _reset_engine(host: TestHost) -> None:
    """Remove the host's containers, user-defined networks and volumes (images stay)."""
    client = host.local_client(timeout=60)
    try:
        for container in client.api.containers(all=True):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(container["Id"], force=True, v=True)
        client.api.prune_networks()
        for volume in client.api.volumes().get("Volumes") or []:
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_volume(volume["Name"], force=True)
    finally:
        client.close()


def _check_arguments(names: Sequence[str], ssh_hosts: Sequence[str]) -> None:
    if not names:
        raise ValueError("no host names")
    if len(names) > MAX_HOSTS:
        raise ValueError(f"at most {MAX_HOSTS} hosts")
    if len(set(names)) != len(names):
        raise ValueError(f"host names repeat: {list(names)}")
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(f"host name {name!r}: lowercase letters and digits, at most 11")
    if unknown := set(ssh_hosts) - set(names):
        raise ValueError(f"ssh hosts {sorted(unknown)} are not among the hosts {list(names)}")


def _check_tools(ssh: bool) -> None:
    tools = {**REQUIRED_TOOLS, **(SSH_TOOLS if ssh else {})}
    missing = {tool: package for tool, package in tools.items() if not _have(tool)}
    if missing:
        raise RuntimeError(
            f"missing {', '.join(sorted(missing))}: "
            f"apt-get install -y {' '.join(sorted(set(missing.values())))}"
        )
    if ssh and importlib.util.find_spec("paramiko") is None:
        # docker-py imports paramiko for any ssh:// URL, even with use_ssh_client=True.
        raise RuntimeError("the docker SDK needs paramiko for ssh:// hosts: pip install paramiko")
    if os.geteuid() != 0:
        raise RuntimeError("the extra Docker hosts need root (namespaces, iptables, dockerd)")


def _have(tool: str) -> bool:
    return shutil.which(tool) is not None or Path("/usr/sbin", tool).exists()


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result


def _make_bridge() -> None:
    _run("ip", "link", "add", PRIVATE_BRIDGE, "type", "bridge")
    _run("ip", "addr", "add", f"{PRIVATE_ADDRESS}/{PRIVATE_PREFIX_LENGTH}", "dev", PRIVATE_BRIDGE)
    _run("ip", "link", "set", PRIVATE_BRIDGE, "up")
    forwarding = Path("/proc/sys/net/ipv4/ip_forward")
    if forwarding.read_text().strip() != "1":
        forwarding.write_text("1\n")
    if _run("iptables", "-w", "-C", *FORWARD_RULE, check=False).returncode != 0:
        _run("iptables", "-w", "-I", *FORWARD_RULE)


def _make_namespace(host: TestHost) -> None:
    veth, peer = f"{VETH_PREFIX}{host.name}", f"{VETH_PEER_PREFIX}{host.name}"
    inside = ("ip", "-n", host.netns)
    _run("ip", "netns", "add", host.netns)
    _run("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
    _run("ip", "link", "set", peer, "netns", host.netns)
    _run("ip", "link", "set", veth, "master", PRIVATE_BRIDGE, "up")
    _run(*inside, "link", "set", "lo", "up")
    _run(*inside, "link", "set", peer, "name", "eth0")
    _run(*inside, "addr", "add", f"{host.address}/{PRIVATE_PREFIX_LENGTH}", "dev", "eth0")
    _run(*inside, "link", "set", "eth0", "up")
    _run(*inside, "route", "add", "default", "via", PRIVATE_ADDRESS)


def _make_ssh_client() -> Path:
    """The client key, ssh_config, known_hosts and the `ssh` wrapper; returns the wrapper's
    directory."""
    SSH_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = SSH_DIR / "id_ed25519"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dograh-test-hosts", "-f", str(key))
    (SSH_DIR / "known_hosts").touch(mode=0o600)
    config = SSH_DIR / "ssh_config"
    config.write_text(
        "Host *\n"
        f"  User {SSH_USER}\n"
        f"  IdentityFile {key}\n"
        "  IdentitiesOnly yes\n"
        "  IdentityAgent none\n"
        f"  UserKnownHostsFile {SSH_DIR / 'known_hosts'}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking accept-new\n"
        "  BatchMode yes\n"
        "  ConnectTimeout 5\n"
        "  ServerAliveInterval 15\n"
        "  LogLevel ERROR\n"
    )
    bin_dir = SSH_DIR / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {SSH} -F {config} "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


def _start_sshd(host: TestHost) -> subprocess.Popen[bytes]:
    directory = host.run_dir / "sshd"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    host_key = directory / "ssh_host_ed25519_key"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", str(host_key))
    authorized = directory / "authorized_keys"
    shutil.copyfile(SSH_DIR / "id_ed25519.pub", authorized)
    authorized.chmod(0o600)
    config = directory / "sshd_config"
    config.write_text(
        f"ListenAddress {host.address}:22\n"
        f"HostKey {host_key}\n"
        f"PidFile {directory / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "UseDNS no\n"
        "PrintMotd no\n"
        "PrintLastLog no\n"
        # Every docker SDK connection is an ssh session of its own: allow many at once.
        "MaxStartups 100:30:200\n"
        "MaxSessions 100\n"
        # The namespaces share the root filesystem: point `docker` at this host's engine.
        f"SetEnv DOCKER_HOST={host.local_url}\n"
    )
    _run(SSHD, "-t", "-f", str(config))
    return subprocess.Popen(
        [
            "nsenter",
            f"--net=/run/netns/{host.netns}",
            SSHD,
            "-D",
            "-f",
            str(config),
            "-E",
            str(host.run_dir / "sshd.log"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _await_port(
    address: str, port: int, processes: Sequence[subprocess.Popen[bytes]], timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        if any(process.poll() is not None for process in processes):
            raise RuntimeError(f"sshd exited; see {RUN_DIR}/*/sshd.log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answers on {address}:{port} after {timeout:.0f} s")
        time.sleep(0.05)


def _cleanup() -> None:
    """Remove whatever an earlier run left, or this one made: processes, mounts, namespaces,
    veths, the bridge, the FORWARD rule, and /run/dograh-test-hosts (logs aside)."""
    namespaces = _our_namespaces()
    # dockerds first, politely: each stops its containers, shims and containerd.
    engines = [pid for pid in _our_processes(namespaces) if _comm(pid) == "dockerd"]
    _terminate(engines, signal.SIGTERM, timeout=ENGINE_STOP_TIMEOUT)
    # Then everything else of ours, including containers whose engine was killed.
    # (A container's process 1 may ignore SIGTERM: it gets a short while only.)
    _terminate(_our_processes(namespaces), signal.SIGTERM, timeout=3)
    _terminate(_our_processes(namespaces), signal.SIGKILL, timeout=10)
    _unmount_under(RUN_DIR, DATA_DIR)
    _remove_cgroups()
    for namespace in namespaces:
        _run("ip", "netns", "delete", namespace, check=False)
    for link in _links():
        if link.startswith((VETH_PREFIX, VETH_PEER_PREFIX)) or link == PRIVATE_BRIDGE:
            _run("ip", "link", "delete", link, check=False)
    while _run("iptables", "-w", "-C", *FORWARD_RULE, check=False).returncode == 0:
        _run("iptables", "-w", "-D", *FORWARD_RULE)
    if RUN_DIR.exists():
        for entry in RUN_DIR.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                for item in entry.iterdir():
                    if not item.name.endswith(".log"):
                        _remove(item)
                if not any(entry.iterdir()) or entry == SSH_DIR:
                    _remove(entry)
            else:
                _remove(entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _our_namespaces() -> list[str]:
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return []
    return sorted(p.name for p in netns_dir.iterdir() if p.name.startswith(NETNS_PREFIX))


def _links() -> list[str]:
    output = _run("ip", "-o", "link", "show", check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in output.splitlines() if ":" in line]


def _netns_pids(namespace: str) -> list[int]:
    output = _run("ip", "netns", "pids", namespace, check=False).stdout
    return [int(word) for word in output.split() if word.isdigit()]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _our_processes(namespaces: Sequence[str]) -> list[int]:
    """Every process in our namespaces, the dockerd/containerd/shim/sshd processes whose command
    line names our run directory (also when their namespace is gone already), and every process
    in our containers' cgroups."""
    pids: set[int] = set()
    for namespace in namespaces:
        pids.update(_netns_pids(namespace))
    marker = f"{RUN_DIR}/".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        if not _comm(int(entry.name)).startswith(_PROGRAMS):
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in command or b"-host-ip\x0010.210.0." in command:
            pids.add(int(entry.name))
    for group in _our_cgroups():
        for procs in group.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(line) for line in procs.read_text().split())
    pids.discard(os.getpid())
    return sorted(pids)


def _our_cgroups() -> list[Path]:
    root = Path("/sys/fs/cgroup")
    return [*root.glob(f"{CGROUP_PREFIX}*"), *root.glob(f"*/{CGROUP_PREFIX}*")]


def _remove_cgroups() -> None:
    for group in _our_cgroups():
        for directory in sorted(
            (p for p in group.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
        ):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            group.rmdir()


def _terminate(pids: Sequence[int], sig: signal.Signals, timeout: float) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive:
            return
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _unmount_under(*directories: Path) -> None:
    prefixes = tuple(f"{directory}/" for directory in directories)
    mount_points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point.startswith(prefixes) or point in {str(d) for d in directories}:
            mount_points.append(point)
    for point in sorted(set(mount_points), key=lambda p: -p.count("/")):
        _run("umount", "-l", point, check=False)


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"
