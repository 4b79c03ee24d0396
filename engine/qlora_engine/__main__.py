"""`python -m qlora_engine`: serve JSON-RPC on stdio. `python -m qlora_engine --env`: print the env report.

stdout carries protocol frames only. The protocol writer gets a private duplicate of fd 1, then fd 1 is pointed
at stderr, so a stray print() or a C library writing to stdout (bitsandbytes, CUDA) cannot corrupt a frame. The
reader is a private duplicate of fd 0 too: rpc's reading thread is still blocked on it when the interpreter exits,
and finalizing sys.stdin under that thread aborts the process.
SIGINT is ignored: Ctrl-C in a terminal reaches the whole process group, and the server cancels a run
cooperatively (train/cancel) so it can checkpoint.
Inductor's compiled code is cached in ~/.cache/qlora-studio/inductor (XDG_CACHE_HOME respected) unless
TORCHINDUCTOR_CACHE_DIR is set: its default, under /tmp, is gone after a reboot, and with it the work of compiling
(Phi-2's training layers: 42-65 s on an H200 the first time; docs/performance.md).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--env" in argv:
        from .env import env_report
        print(json.dumps(env_report(), indent=2))
        return 0
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(cache_home, "qlora-studio", "inductor"))
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=os.environ.get("QLORA_ENGINE_LOG", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .rpc import Connection
    from .handlers import Handlers
    protocol_in = os.fdopen(os.dup(0), "rb")
    Handlers(Connection(protocol_in, protocol_out)).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
