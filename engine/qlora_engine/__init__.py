"""QLoRA Studio engine: loads and quantizes the base model, trains LoRA adapters, generates.

The engine is a long-lived child process of the language server speaking JSON-RPC over stdio
(`python -m qlora_engine`). `Recipe` is also usable directly from Python (benchmarks, notebooks).
"""
from __future__ import annotations

__version__ = "0.1.0"
