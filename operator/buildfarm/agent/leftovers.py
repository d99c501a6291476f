"""What a crashed agent (kill -9, power loss) left behind: build processes still running and workspaces
never deleted. A restarted agent kills those process groups and deletes the workspaces before it takes
any build; the builds themselves are requeued by the supervisor (Running here, but not running)."""

import logging
import shutil
from pathlib import Path
from typing import Final

from buildfarm.agent.process import kill_recorded

log = logging.getLogger(__name__)

PROCESSES_FILE: Final = "processes"  # in each workspace: `pid start-time` per process group started


def clean(workspaces: Path) -> None:
    if not workspaces.is_dir():
        return
    for workspace in sorted(workspaces.iterdir()):
        killed = kill_recorded(workspace / PROCESSES_FILE)
        if killed:
            log.warning("Killed process groups %s left running by a previous agent.", killed)
        shutil.rmtree(workspace, ignore_errors=True)
        log.info("Deleted workspace %s left by a previous agent.", workspace.name)
