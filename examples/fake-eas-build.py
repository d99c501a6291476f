#!/usr/bin/env python3
"""A stand-in for `eas build --local` that behaves like a small Expo build: it takes a few seconds, prints
log lines, and writes an .apk or .ipa at the --output path. For the demo and the tests:

    BUILDFARM_AGENT_COMMAND="python3 examples/fake-eas-build.py build --local --non-interactive \
        --platform {platform} --profile {profile} --output {artifact}" buildfarm agent

The project being built may steer it with a `fake-build.json` in its root (all keys optional):
  {"seconds": 2, "exit": 0, "lines": 10, "children": 0, "pid_file": "/tmp/pids", "ignore_term": false}
`children` starts that many `sleep` processes in the build's process group and `pid_file` records every
PID (the build's own first), so a test can check they are all gone after a cancel.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(prog="fake-eas-build")
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--local", action="store_true")
    parser.add_argument("--non-interactive", action="store_true")
    parser.add_argument("--platform", required=True, choices=["ios", "android"])
    parser.add_argument("--profile", default="production")
    parser.add_argument("--output", required=True)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    config_path = Path("fake-build.json")
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    seconds = float(config.get("seconds", args.seconds))
    lines = max(1, int(config.get("lines", 10)))
    if config.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    children = [subprocess.Popen(["sleep", "300"]) for _ in range(int(config.get("children", 0)))]
    if config.get("pid_file"):
        Path(config["pid_file"]).write_text(
            "\n".join(str(p) for p in [os.getpid(), *(c.pid for c in children)])
        )

    app = json.loads(Path("app.json").read_text()).get("expo", {}) if Path("app.json").exists() else {}
    name = app.get("name", "app")
    print(f"[fake-eas] Building {name} for {args.platform} with profile {args.profile}", flush=True)
    print(
        f"[fake-eas] HOME={os.environ.get('HOME')} KUBECONFIG={os.environ.get('KUBECONFIG', '<unset>')}",
        flush=True,
    )
    for step in range(1, lines + 1):
        time.sleep(seconds / lines)
        print(f"[fake-eas] step {step}/{lines}: compiling...", flush=True)

    code = int(config.get("exit", 0))
    if code != 0:
        print(f"[fake-eas] error: the build failed (exit {code})", file=sys.stderr, flush=True)
        return code
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(f"fake {args.platform} binary of {name}\n".encode() * 100)
    print(f"[fake-eas] Wrote {output.name} ({output.stat().st_size} bytes)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
