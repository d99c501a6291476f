"""Stop signals reach the agent on a thread of their own, never through a handler in the main thread."""

import subprocess
import sys

# Holds the Event's own lock, as Event.wait does on its way in and out, while SIGTERM arrives: a Python
# handler that set the Event would run in this main thread and wait for that lock forever (CI saw an
# agent hang so). Each process gets its own signal handlers and wakeup fd, so this runs in a child.
SCRIPT = """
import os, signal, threading, time
from buildfarm.agent import signals

stop = threading.Event()
threads = []

def handle(signum):
    threads.append(threading.current_thread().name)
    stop.set()

signals.relay([signal.SIGTERM], handle)
with stop._cond:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)
print(stop.wait(10), *threads)
"""


def test_a_stop_signal_is_handled_on_its_own_thread_while_the_main_thread_holds_a_lock() -> None:
    child = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert (child.returncode, child.stdout.split()) == (0, ["True", "signals"]), child.stderr
