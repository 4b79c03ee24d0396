"""`python -m qlora_engine`: serve JSON-RPC on stdio. `python -m qlora_engine --env`: print the env report.

stdout carries protocol frames only. The protocol writer gets a private duplicate of fd 1, then fd 1 is pointed
at stderr, so a stray print() or a C library writing to stdout (bitsandbytes, CUDA) cannot corrupt a frame. The
reader is a private duplicate of fd 0 too: rpc's reading thread is still blocked on it when the interpreter exits,
and finalizing sys.stdin under that thread aborts the process.
SIGINT is ignored: Ctrl-C in a terminal reaches the whole process group, and the server cancels a run
cooperatively (train/cancel) so it can checkpoint.
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
