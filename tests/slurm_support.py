"""A one-node Slurm cluster for tests/test_slurm.py: munged, slurmctld and slurmd started on this
machine with their configuration, state and logs in a temporary folder, stopped by their process ids.

Needs Debian's `slurmctld slurmd slurm-client munge` (.ci/run installs them) and root (slurmd starts
jobs as their user). ``why_not()`` says why it cannot run here, for a clean skip.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")

CONF = """ClusterName=attention-lab-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.sock
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName=test Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def why_not() -> str | None:
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        return (f"Slurm is not installed ({', '.join(missing)} missing); on Debian: apt-get install "
                "slurmctld slurmd slurm-client munge")  # fmt: skip
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs, and this test runs as another user"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """``with Cluster(folder) as env:`` a running one-node Slurm; ``env`` is the environment in
    which sbatch, squeue and sinfo talk to it."""

    def __init__(self, folder: Path):
        self.d = folder
        self.env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}

    def __enter__(self) -> dict:
        d = self.d
        for sub in ("state", "spool"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        key = d / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o600)
        node = socket.gethostname().split(".")[0]
        (d / "slurm.conf").write_text(CONF.format(d=d, node=node, cpus=os.cpu_count() or 1,
                                                  ctld_port=free_port(), d_port=free_port()))  # fmt: skip
        try:
            self._run(["munged", "--force", f"--socket={d}/munge.sock", f"--key-file={key}",
                       f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log",
                       f"--seed-file={d}/munged.seed"])  # fmt: skip
            self._run(["slurmctld", "-f", str(d / "slurm.conf")])
            self._run(["slurmd", "-f", str(d / "slurm.conf"), "-N", node])
            self.wait(lambda: "idle" in self.sinfo(), 30, "the node to come up")
        except BaseException:
            self.__exit__()
            raise
        return self.env

    def _run(self, command: list[str]) -> None:
        subprocess.run(command, env=self.env, check=True, capture_output=True, timeout=30)

    def sinfo(self) -> str:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True
        )
        return done.stdout

    def wait(self, ready, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > deadline:
                logs = "".join((self.d / f).read_text()[-1500:] for f in ("slurmctld.log", "slurmd.log")
                               if (self.d / f).exists())  # fmt: skip
                raise TimeoutError(f"waited {seconds} s for {what}; logs:\n{logs}")
            time.sleep(0.5)

    def __exit__(self, *_) -> None:
        for name in (
            "slurmd",
            "slurmctld",
            "munged",
        ):  # stopped by the ids they wrote, nothing else
            pid_file = self.d / f"{name}.pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        time.sleep(1)
