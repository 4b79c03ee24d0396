"""Mirror of protocol/engine.ts (method names and error codes of the server <-> engine channel) and of
protocol/run-folder.ts (the run folder's file names and the keys of run.json and metrics.jsonl lines).

Names are the TypeScript constants in UPPER_SNAKE_CASE (TrainStart -> TRAIN_START). tests/test_protocol_mirror.py
parses engine.ts and fails when the two drift apart; change both files together. Params and results are the
camelCase dicts described there; the ResolvedConfig inside them is snake_case (config.py reads it).
"""
from __future__ import annotations

# lifecycle
INITIALIZE = "initialize"
SHUTDOWN = "shutdown"

# training
TRAIN_START = "train/start"
TRAIN_CANCEL = "train/cancel"
TRAIN_PLAN = "train/plan"

# models
MODEL_IMPORT = "model/import"
MODEL_EXPORT = "model/export"
MODEL_PULL = "model/pull"

# generation
GENERATE = "generate"

# cancellation (server -> engine, LSP's notification): a request in flight stops where it can
CANCEL_REQUEST = "$/cancelRequest"

# notifications (engine -> server)
TRAIN_DID_STAGE = "train/didStage"
TRAIN_DID_PROGRESS = "train/didProgress"
TRAIN_DID_EVAL = "train/didEval"
TRAIN_DID_CHECKPOINT = "train/didCheckpoint"
TRAIN_DID_END = "train/didEnd"
MODEL_DID_PROGRESS = "model/didProgress"
GENERATE_DID_STREAM = "generate/didStream"

ENGINE_METHODS = (
    INITIALIZE,
    SHUTDOWN,
    TRAIN_START,
    TRAIN_CANCEL,
    TRAIN_PLAN,
    MODEL_IMPORT,
    MODEL_EXPORT,
    MODEL_PULL,
    GENERATE,
    CANCEL_REQUEST,
    TRAIN_DID_STAGE,
    TRAIN_DID_PROGRESS,
    TRAIN_DID_EVAL,
    TRAIN_DID_CHECKPOINT,
    TRAIN_DID_END,
    MODEL_DID_PROGRESS,
    GENERATE_DID_STREAM,
)

# Not part of engine.ts: LSP's lifecycle notification, accepted so a client may follow `shutdown` with it.
EXIT = "exit"

ERROR_CODES = {
    "ParseError": -32700,
    "InvalidRequest": -32600,
    "MethodNotFound": -32601,
    "InvalidParams": -32602,
    "InternalError": -32603,
    "OutOfMemory": -32001,
    "BitsAndBytesMissing": -32002,
    "ModelNotFound": -32003,
    "BadDataset": -32004,
    "BadConfig": -32005,
    "BadTemplate": -32006,
    "CudaUnavailable": -32007,
    "RunNotFound": -32008,
    "Busy": -32009,
    "CheckpointNotFound": -32010,
    "TrainingDiverged": -32011,
    "WriteFailed": -32012,
    "CheckpointDamaged": -32013,
    "BadModelFile": -32014,
    "HubUnreachable": -32015,
    "ModelGated": -32016,
    "RequestCancelled": -32800,
}

# Codes meaning "the user's input is wrong" (the CLI exits 2 for these).
BAD_INPUT_CODES = (
    ERROR_CODES["ModelNotFound"],
    ERROR_CODES["BadDataset"],
    ERROR_CODES["BadConfig"],
    ERROR_CODES["BadTemplate"],
    ERROR_CODES["CudaUnavailable"],
    ERROR_CODES["BitsAndBytesMissing"],
    ERROR_CODES["CheckpointNotFound"],
    ERROR_CODES["BadModelFile"],
    ERROR_CODES["ModelGated"],
)

# Training stages (TrainDidStageParams.stage) and run statuses (RunStatus; run.json adds "running").
STAGES = ("loading-data", "downloading", "loading-model", "training", "saving")
RUN_STATUSES = ("completed", "cancelled", "failed")


# The run folder (protocol/run-folder.ts RunFolder): file and folder names inside runs/<run-id>/.
RUN_FOLDER = {
    "record": "run.json",
    "config": "config.yaml",
    "metrics": "metrics.jsonl",
    "engineLog": "engine.log",
    "checkpoints": "checkpoints",
    "adapter": "adapter",
    "bestAdapter": "best-adapter",
    "eval": "eval",
    "tensorboard": "tensorboard",
    "workers": "workers",
}
# Keys of run.json (RunRecord) and of metrics.jsonl lines (TrainLine, EvalLine; gpuMemoryPerDevice is only in the
# lines of a train.devices > 1 run, and the last three of EVAL_LINE_KEYS are optional: ROUGE at train.rouge_every,
# `best` when the evaluation is the best so far).
RUN_RECORD_KEYS = ("runId", "status", "step", "totalSteps", "startedAt", "endedAt", "data", "adapterPath", "error",
                   "best", "picks", "stopReason")
TRAIN_LINE_KEYS = ("type", "step", "epoch", "loss", "learningRate", "gradNorm", "tokensPerSecond", "tokens",
                   "gpuMemoryBytes", "gpuMemoryPerDevice", "elapsedSeconds", "etaSeconds")
EVAL_LINE_KEYS = ("type", "step", "evalLoss", "evalRecords", "rouge", "rougeRecords", "best")
