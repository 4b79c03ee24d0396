"""Loading the tokenizer and base model (quantized or not) and adding the LoRA adapter.

Checks that need no weights run first (`check_model`): the model exists (local folder with config.json, or a
hub id: its config and tokenizer fetched into the cache by hub_pull, or found there when offline), the device
supports the quantization, and every LoRA target names a linear layer of the architecture, found on a weightless
skeleton built on the meta device from the config alone. A hub model's weights are fetched by the caller that
loads them (`pull_weights`), as its `downloading` stage.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Set, Tuple

import torch

from .config import Config
from .errors import BadConfig, ModelNotFound, bitsandbytes_missing, cuda_unavailable
from .hub_pull import Report, is_hub_id, offline, pull

log = logging.getLogger(__name__)


def device() -> torch.device:
    return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")


def compute_dtype(config: Config) -> torch.dtype:
    if config.compute_dtype != "auto":
        return getattr(torch, config.compute_dtype)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def model_source(config: Config) -> str:
    """The folder or hub id to load from; ModelNotFound (field "model") when it cannot be found."""
    name = config.model
    if not is_hub_id(name):
        folder = Path(name).expanduser()
        if not folder.is_absolute():
            raise BadConfig(f"model path {name!r} must be absolute (the server resolves it against the config "
                            "file).", field="model")
        if not folder.is_dir():
            raise ModelNotFound(f"model folder not found: {folder}. Set `model` to a folder holding config.json "
                                "and model.safetensors, or to a hub id such as microsoft/phi-2.",
                                file=str(folder), field="model")
        if not (folder / "config.json").is_file():
            raise ModelNotFound(f"{folder} has no config.json, so it is not a transformers model folder.",
                                file=str(folder), field="model")
        return str(folder)
    if offline():
        from huggingface_hub import try_to_load_from_cache
        cached = try_to_load_from_cache(name, "config.json")
        if not isinstance(cached, str):
            raise ModelNotFound(
                f"model {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading "
                f"it. Run `qlora-studio pull {name}` where there is network, or set `model` to a local "
                "folder.", field="model")
    else:
        pull(name, weights=False)  # config and tokenizer; a gated, missing or unreachable model is named here
    return name


def pull_weights(config: Config, report: "Report | None" = None, cancel: Any = None) -> bool:
    """A hub model's weights into the cache before they load (nothing for a folder, or when they are there);
    `report` sees the bytes (hub_pull.Progress) only when some must be fetched. True when it fetched any."""
    if not is_hub_id(config.model):
        return False
    return pull(config.model, report=report, cancel=cancel)["downloadedBytes"] > 0


def load_auto_config(config: Config, source: str) -> Any:
    from transformers import AutoConfig
    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not config.trust_remote_code and ("custom code" in first or "trust_remote_code" in first):
            raise ModelNotFound(
                f"model {config.model!r} loads only with its own Python code (auto_map in its config.json); set "
                "trust_remote_code: true only if you trust where the model comes from", field="trust_remote_code") from None
        raise ModelNotFound(f"cannot load the config of model {config.model!r}: {first}", field="model") from None


def skeleton(auto_config: Any, trust_remote_code: bool = False) -> torch.nn.Module:
    """The architecture with every tensor on the meta device: module names and shapes, no memory."""
    from transformers import AutoModelForCausalLM
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(auto_config, trust_remote_code=trust_remote_code)


def linear_modules(model: torch.nn.Module) -> List[Tuple[str, torch.nn.Module]]:
    """(qualified name, module) of every layer LoRA can target: nn.Linear and transformers' Conv1D."""
    try:
        from transformers.pytorch_utils import Conv1D
        kinds: Tuple[type, ...] = (torch.nn.Linear, Conv1D)
    except ImportError:
        kinds = (torch.nn.Linear,)
    return [(name, module) for name, module in model.named_modules() if isinstance(module, kinds)]


ALL_LINEAR = "all-linear"  # peft's shorthand: every linear layer but the output head


def lora_targets(config: Config) -> "str | List[str]":
    """lora.target_modules as peft takes it: the string "all-linear", or the list of names."""
    targets = list(config.lora.target_modules)
    return ALL_LINEAR if targets == [ALL_LINEAR] else targets


def targeted(config: Config, model: torch.nn.Module) -> List[Tuple[str, torch.nn.Module]]:
    """(name, module) of every linear layer the config's LoRA targets (for the plan's sizes)."""
    output = model.get_output_embeddings()
    if lora_targets(config) == ALL_LINEAR:
        return [(n, m) for n, m in linear_modules(model) if m is not output]
    return [(n, m) for n, m in linear_modules(model)
            if any(n == t or n.endswith("." + t) for t in config.lora.target_modules)]


def check_target_modules(config: Config, model: torch.nn.Module) -> None:
    if ALL_LINEAR in config.lora.target_modules:
        if len(config.lora.target_modules) > 1:
            raise BadConfig(f"lora.target_modules: {ALL_LINEAR!r} targets every linear layer but the output head; use "
                            f"it alone: target_modules: [{ALL_LINEAR}].", field="lora.target_modules")
        return
    names = [name for name, _ in linear_modules(model)]
    valid: Set[str] = {name.rsplit(".", 1)[-1] for name in names}
    for target in config.lora.target_modules:
        # peft matches a target against a module's full name or any dotted suffix of it.
        if not any(name == target or name.endswith("." + target) for name in names):
            raise BadConfig(f"lora.target_modules: {target!r} is not a linear layer of this model. Valid names: "
                            f"{', '.join(sorted(valid))}.", field="lora.target_modules")


def check_device_support(config: Config, *, training: bool = True) -> None:
    """Quantization (and, for training, the paged optimizer) need CUDA and bitsandbytes; say so up front."""
    paged = training and config.train.optimizer == "paged_adamw_8bit"
    if not torch.cuda.is_available():
        if config.quantized:
            raise cuda_unavailable()
        if paged:
            raise BadConfig("train.optimizer paged_adamw_8bit needs an NVIDIA GPU with CUDA; use adamw_torch on "
                            "CPU.", field="train.optimizer")
    if config.quantized or paged:
        try:
            import bitsandbytes  # noqa: F401
        except Exception as exc:
            raise bitsandbytes_missing(f"{type(exc).__name__}: {exc}") from None


def check_model(config: Config) -> Tuple[str, Any]:
    """Everything about the model that can be checked without weights; returns (source, AutoConfig)."""
    source = model_source(config)
    auto_config = load_auto_config(config, source)
    check_target_modules(config, skeleton(auto_config, config.trust_remote_code))
    return source, auto_config


def load_tokenizer(config: Config, source: str) -> Any:
    from transformers import AutoTokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"cannot load the tokenizer of {config.model!r}: {exc}", field="model") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # pad = EOS; padded positions never carry loss
    return tokenizer


def _dtype_kwarg(dtype: torch.dtype) -> dict:
    # transformers renamed torch_dtype to dtype in 4.56; the old name still works there, with a warning.
    import transformers
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def quant_storage(config: Config) -> torch.dtype:
    """The dtype bitsandbytes packs 4-bit weights into. uint8 by default; with train.strategy fsdp the dtype of the
    other base weights (the FSDP-QLoRA recipe), so FSDP shards a decoder layer's packed weights, norms and biases as
    tensors of one float dtype. The same bytes either way: only the container's element type changes."""
    if config.train.strategy != "fsdp":
        return torch.uint8
    return torch.float32 if upcasts(config) else compute_dtype(config)


def quantization_config(config: Config, dtype: torch.dtype) -> Any:
    from transformers import BitsAndBytesConfig
    if config.quantization in ("nf4", "fp4"):
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=config.quantization,
                                  bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=config.double_quant,
                                  bnb_4bit_quant_storage=quant_storage(config))
    if config.quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def load_base_model(config: Config, source: str) -> Any:
    """The frozen base model on the training device, quantized as configured."""
    from transformers import AutoModelForCausalLM
    check_device_support(config, training=False)
    dtype = compute_dtype(config)
    kwargs: dict = {"use_safetensors": True, "trust_remote_code": config.trust_remote_code,
                    "attn_implementation": "sdpa", **_dtype_kwarg(dtype)}
    quant = quantization_config(config, dtype)
    if quant is not None:
        kwargs["quantization_config"] = quant
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": torch.cuda.current_device()}  # a distributed rank's own GPU (distributed.py)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"cannot load the weights of {config.model!r}: {str(exc).strip().splitlines()[0]} "
                            "(the engine loads safetensors only).", field="model") from None
    return model


def upcasts(config: Config) -> bool:
    """train.fp32_upcast resolved: peft's k-bit preparation upcasts the non-quantized weights to fp32, so the
    residual stream runs in fp32. Needed only where half precision can overflow (float16 compute); with bfloat16
    the stream stays bf16 (LayerNorm and softmax accumulate in fp32 inside their kernels either way)."""
    if config.train.fp32_upcast != "auto":
        return bool(config.train.fp32_upcast)
    return config.quantized and compute_dtype(config) == torch.float16


def add_lora(model: Any, config: Config, *, checkpointing: bool) -> Any:
    """Freeze the base, prepare k-bit training, and wrap in a PeftModel with a seeded LoRA init."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    gc_kwargs = {"use_reentrant": False}  # reentrant checkpointing needs inputs that require grad
    model.config.use_cache = False  # the KV cache is useless in training and conflicts with checkpointing
    if config.quantized and upcasts(config):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                                gradient_checkpointing_kwargs=gc_kwargs)
    else:
        for param in model.parameters():
            param.requires_grad_(False)
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
    lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                      target_modules=lora_targets(config), bias="none", task_type="CAUSAL_LM")
    torch.manual_seed(config.train.seed)  # LoRA A is randomly initialised: same seed, same adapter
    return get_peft_model(model, lora)


def base_model(model: Any) -> Any:
    """The transformers model inside a PeftModel (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers(model: Any, field: str = "train.compile") -> List[torch.nn.Module]:
    """The repeated transformer blocks of a (PEFT-wrapped) causal LM; BadConfig on `field` (the setting that needs
    them: compile, or strategy fsdp) when the architecture has no such list."""
    layers = getattr(base_model(model).get_decoder(), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise BadConfig(f"{field}: this architecture's decoder has no `layers` list.", field=field)
    return list(layers)


def compiles(config: Config, cuda: bool) -> bool:
    """train.compile resolved: "auto" compiles on CUDA when Triton (Inductor's GPU code generator) is installed;
    never on a CPU, where compiling costs minutes and the engine only runs small models."""
    if not cuda or not config.train.token_batching:
        return False
    if config.train.compile != "auto":
        return bool(config.train.compile)
    return has_triton()


def has_triton() -> bool:
    """Whether Triton, Inductor's GPU code generator, imports here."""
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


def uncompile_layers(model: Any) -> None:
    """Back to eager layers (after a compilation failure)."""
    for layer in decoder_layers(model):
        layer._compiled_call_impl = None
    try:
        torch._dynamo.reset()
    except Exception:  # pragma: no cover - a torch without dynamo never compiled
        pass


def compile_layers(model: Any) -> None:
    """torch.compile each decoder layer in place (dynamic shapes: passes vary in length). The blocks share one
    compiled graph (their weights are graph inputs), Inductor fuses LoRA's casts, dropout, scaling and the
    residual adds into a few kernels, and bitsandbytes' 4-bit ops stay as they are (they are registered torch
    ops). Compilation happens on the first step and is cached on disk by Inductor for later runs."""
    for layer in decoder_layers(model):
        layer.compile(dynamic=True)
