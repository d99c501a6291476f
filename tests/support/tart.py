"""Stand-ins for `tart` and `ssh`: small Python scripts on PATH that record every call and keep fake VMs
as directories, so the tart executor runs for real without Tart or a Mac. The ssh stand-in runs the
remote command with `sh -c` in the home directory of the VM whose IP it was given."""

import json
import sys
from pathlib import Path

TART = r"""
import json, os, pathlib, shutil, sys, time
STATE = pathlib.Path(__STATE__)
VMS = STATE / "vms"
VMS.mkdir(parents=True, exist_ok=True)
with (STATE / "calls.jsonl").open("a") as calls:
    calls.write(json.dumps(["tart", *sys.argv[1:]]) + "\n")
args = sys.argv[1:]
verb = args[0] if args else ""
if verb == "clone":
    vm = VMS / args[2]
    (vm / "home").mkdir(parents=True)
    (vm / "image").write_text(args[1])
    (vm / "ip").write_text("192.168.64.%d" % (len(list(VMS.iterdir())) + 1))
elif verb == "run":
    vm = VMS / args[-1]
    (vm / "running").touch()
    while (vm / "running").exists():
        time.sleep(0.1)
elif verb == "ip":
    vm = VMS / args[-1]
    if not (vm / "running").exists():
        sys.exit(1)
    print((vm / "ip").read_text())
elif verb == "stop":
    (VMS / args[-1] / "running").unlink(missing_ok=True)
elif verb == "delete":
    shutil.rmtree(VMS / args[-1], ignore_errors=True)
elif verb == "list":
    states = {vm.name: "running" if (vm / "running").exists() else "stopped" for vm in VMS.iterdir()}
    print(json.dumps([{"Name": n, "Source": "local", "State": s} for n, s in states.items()]))
else:
    sys.exit("tart stand-in: unknown command %r" % verb)
"""

SSH = r"""
import json, os, pathlib, subprocess, sys
STATE = pathlib.Path(__STATE__)
with (STATE / "calls.jsonl").open("a") as calls:
    calls.write(json.dumps(["ssh", *sys.argv[1:]]) + "\n")
args = sys.argv[1:]
while args and args[0].startswith("-"):
    args = args[2:] if args[0] in ("-o", "-i", "-p", "-l") else args[1:]
host = args[0].split("@")[-1]
command = " ".join(args[1:])
for vm in (STATE / "vms").iterdir():
    if (vm / "ip").read_text() == host and (vm / "running").exists():
        home = vm / "home"
        env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        sys.exit(subprocess.run(["sh", "-c", command], cwd=home, env=env).returncode)
sys.exit("ssh: connect to host %s port 22: No route to host" % host)
"""


def install(bin_dir: Path, state: Path) -> None:
    """Write the `tart` and `ssh` stand-ins into bin_dir, keeping their state in `state`."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    (state / "vms").mkdir(exist_ok=True)
    for name, body in (("tart", TART), ("ssh", SSH)):
        script = bin_dir / name
        script.write_text(f"#!{sys.executable}\n" + body.replace("__STATE__", repr(str(state))))
        script.chmod(0o755)


def calls(state: Path) -> list[list[str]]:
    path = state / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def vms(state: Path) -> list[str]:
    return sorted(p.name for p in (state / "vms").iterdir())


def fake_vm(state: Path, name: str) -> None:
    """A VM as a dead agent would leave it behind."""
    (state / "vms" / name / "home").mkdir(parents=True)
    (state / "vms" / name / "ip").write_text("192.168.64.200")
