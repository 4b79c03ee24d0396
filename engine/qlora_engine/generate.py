"""The `generate` request: prompts rendered through the template, completions from the base model or an adapter.

The base model is loaded once and kept (keyed by model, quantization and dtype): "summarize selection" must not
reload gigabytes per call. Adapters are attached to that same model with peft (is_trainable=False), each once,
and switched by name; adapter=None runs inside `disable_adapter()` on the same weights. An adapter folder that
was rewritten since it was loaded (a new training run) is reloaded. With `alsoBase`, every prompt runs twice in the
same batch, once with the adapter and once without, so comparing the two costs one decoding loop instead of two.
Decoding runs on a static KV cache with each step replayed from a CUDA graph (decode.py) for the architectures that
allow it, through transformers' `generate` for the others.

Batches are left-padded with an attention mask, so a prompt's greedy completion does not depend on its batch
neighbours. Greedy by default (temperature 0); temperature > 0 samples (top-p), seeded once per request.
Generation stops at EOS or at the template's `stop` strings; text is cut at the first stop string, and
`newTokens` counts the tokens generated up to and including the EOS or the token that completed the stop string
(never the padding of rows that finished early). `generate_batch` is shared with the training recipe, which scores
ROUGE on validation records with the model it is training.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import logging
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from . import decode
from .config import Config, parse_config
from .decode import DecodeGraphs
from .errors import BadConfig, BadDataset, InvalidParams, ModelNotFound
from .hub_pull import Report
from .model import (check_device_support, check_model, compute_dtype, device, load_base_model, load_tokenizer,
                    pull_weights)
from .streaming import Emit, RowStreamer, cut_at_stop
from .template import PromptTemplate, load_template
from .chat import ChatData, load_chat, resolve_format

log = logging.getLogger(__name__)

# Prompts longer than this prefill in chunks of it (transformers' prefill_chunk_size), so a long dialogue's prefill
# holds one chunk's activations at a time instead of the whole prompt's.
PREFILL_CHUNK = 1024


@functools.lru_cache(maxsize=None)
def _supports_prefill_chunking() -> bool:
    from transformers import GenerationConfig
    return hasattr(GenerationConfig(), "prefill_chunk_size")


def _stop_strings(tokenizer: Any, stops: Sequence[str], prompt_width: int) -> Any:
    """A stopping criterion per row: done once the row's generated text contains a stop string. `done_at[row]` is
    how many tokens the row had generated when it first stopped."""
    from transformers import StoppingCriteria

    class StopStrings(StoppingCriteria):
        def __init__(self) -> None:
            self.done_at: Dict[int, int] = {}

        def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
            generated = input_ids[:, prompt_width:]
            texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
            done = [any(s in t for s in stops) for t in texts]
            for row, stopped in enumerate(done):
                if stopped:
                    self.done_at.setdefault(row, int(generated.shape[1]))
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopStrings()


def generate_batch(model: Any, tokenizer: Any, prompts: List[str], *, stops: Sequence[str], max_new: int,
                   max_length: int, temperature: float = 0.0, top_p: float = 1.0,
                   first_index: int = 0, adapter_names: Optional[List[str]] = None,
                   rows_per_record: int = 1, emit: Optional[Emit] = None,
                   graphs: Optional[DecodeGraphs] = None) -> List[Dict[str, Any]]:
    """Completions of one left-padded batch: [{text, promptTokens, newTokens}]. The caller sets eval mode,
    inference mode and (for sampling) the seed. A prompt over max_length is a BadDataset whose `line` is its
    1-based position in the request's records (`first_index` is the batch's offset there; each record fills
    `rows_per_record` consecutive rows). `adapter_names`, one per row, picks each row's adapter ("__base__": none).
    `emit(row, text, done)` gets each row's text as it grows (streaming.RowStreamer). With `graphs`, decoding runs
    on a static cache with captured steps (decode.py) where the architecture allows; otherwise through
    transformers' `generate` (the training recipe's path: its model changes between calls)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation appends on the right: prompts must end aligned
    try:
        encoded = tokenizer(prompts, add_special_tokens=True, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = side
    lengths = encoded["attention_mask"].sum(dim=1).tolist()
    for offset, length in enumerate(lengths):
        if length > max_length:
            index = first_index + offset // rows_per_record
            raise BadDataset(f"records[{index}]: the prompt is {length} tokens, longer than max_length={max_length}; "
                             "shorten the text or raise max_length.", line=index + 1, field="max_length")
    eos = tokenizer.eos_token_id
    streamer = RowStreamer(tokenizer, len(prompts), eos, stops, emit) if emit is not None else None
    if graphs is not None and decode.supported(model):
        decoded = decode.decode(model, encoded["input_ids"], encoded["attention_mask"], max_new=max_new, eos=eos,
                                pad=tokenizer.pad_token_id, temperature=temperature, top_p=top_p,
                                stop_at=_stop_at(tokenizer, stops) if stops else None, streamer=streamer,
                                adapter_rows=None if adapter_names is None else
                                [n != "__base__" for n in adapter_names], graphs=graphs, chunk=PREFILL_CHUNK)
        rows, done_at = decoded.tokens, decoded.done_at
    else:
        rows, done_at = _transformers_generate(model, tokenizer, encoded, stops=stops, max_new=max_new,
                                               temperature=temperature, top_p=top_p, adapter_names=adapter_names,
                                               streamer=streamer)
    results = []
    for row, (ids, prompt_tokens) in enumerate(zip(rows, lengths)):
        count = ids.index(eos) + 1 if eos in ids else len(ids)  # after EOS comes padding
        if row in done_at:
            count = min(count, done_at[row])  # after the stop string comes padding too
        text = cut_at_stop(tokenizer.decode(ids[:count], skip_special_tokens=True), stops)
        results.append({"text": text, "promptTokens": int(prompt_tokens), "newTokens": count})
    return results


def _stop_at(tokenizer: Any, stops: Sequence[str]) -> decode.StopAt:
    """How many of a row's tokens first complete a stop string (decode.py checks every few steps, so the count is
    found by a scan once the whole text holds one)."""
    def stop_at(ids: List[int]) -> Optional[int]:
        if not any(s in tokenizer.decode(ids, skip_special_tokens=True) for s in stops):
            return None
        for count in range(1, len(ids) + 1):
            text = tokenizer.decode(ids[:count], skip_special_tokens=True)
            if any(s in text for s in stops):
                return count
        return len(ids)  # pragma: no cover - the whole text holds one, so some prefix does
    return stop_at


def _transformers_generate(model: Any, tokenizer: Any, encoded: Any, *, stops: Sequence[str], max_new: int,
                           temperature: float, top_p: float, adapter_names: Optional[List[str]],
                           streamer: Optional[RowStreamer]) -> Tuple[List[List[int]], Dict[int, int]]:
    width = encoded["input_ids"].shape[1]
    kwargs: Dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": tokenizer.pad_token_id,
                              "eos_token_id": tokenizer.eos_token_id, "do_sample": temperature > 0, "use_cache": True}
    if temperature > 0:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    if adapter_names is not None:
        kwargs["adapter_names"] = adapter_names
    if width > PREFILL_CHUNK and _supports_prefill_chunking():
        kwargs["prefill_chunk_size"] = PREFILL_CHUNK
    if streamer is not None:
        kwargs["streamer"] = streamer
    stop = None
    if stops:
        from transformers import StoppingCriteriaList
        stop = _stop_strings(tokenizer, stops, width)
        kwargs["stopping_criteria"] = StoppingCriteriaList([stop])
    dev = device()
    output = model.generate(input_ids=encoded["input_ids"].to(dev), attention_mask=encoded["attention_mask"].to(dev),
                            **kwargs)
    return output[:, width:].tolist(), (stop.done_at if stop is not None else {})


def _param(params: Dict[str, Any], name: str, kind: Any, default: Any = None, *,
           minimum: Optional[float] = None) -> Any:
    value = params.get(name, default)
    if value is None or isinstance(value, bool) or not isinstance(value, kind):
        raise InvalidParams(f"generate: {name} must be {'an integer' if kind is int else 'a number'}.", field=name)
    if minimum is not None and value < minimum:
        raise InvalidParams(f"generate: {name} must be >= {minimum}.", field=name)
    return value


class Generator:
    def __init__(self) -> None:
        self._key: Optional[Tuple[Any, ...]] = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._adapters: Dict[str, Tuple[str, float]] = {}  # folder -> (adapter name, weights mtime)
        self._loaded = 0  # base models loaded (tests check it stays 1)
        self._adapter_names = 0
        self._graphs = DecodeGraphs()  # captured decode steps; they hold weight addresses, so cleared on any change

    def release(self) -> None:
        """Free the cached model (before training, which needs the GPU memory)."""
        self._key, self._model, self._tokenizer, self._adapters = None, None, None, {}
        self._graphs.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ loading
    def _base(self, config: Config, download: Optional[Report] = None, cancel: Any = None) -> Tuple[Any, Any]:
        key = (config.model, config.quantization, config.double_quant, str(compute_dtype(config)),
               config.trust_remote_code)
        if key != self._key:
            self.release()
            check_device_support(config, training=False)
            source, _ = check_model(config)
            tokenizer = load_tokenizer(config, source)
            tokenizer.padding_side = "left"
            pull_weights(config, download, cancel)  # cancel set: hub_pull.Cancelled, what arrived kept
            model = load_base_model(config, source)
            model.eval()
            model.config.use_cache = True
            self._key, self._model, self._tokenizer = key, model, tokenizer
            self._graphs = DecodeGraphs(dense=_dense_fits(model), compile=decode.compiles())
            self._loaded += 1
        return self._model, self._tokenizer

    def _select_adapter(self, folder: str) -> None:
        from peft import PeftModel
        path = Path(folder)
        weights = path / "adapter_model.safetensors"
        if not (path / "adapter_config.json").is_file() or not weights.is_file():
            raise ModelNotFound(f"{path} is not a PEFT adapter folder (needs adapter_config.json and "
                                "adapter_model.safetensors).", file=str(path), field="adapter")
        mtime = weights.stat().st_mtime
        known = self._adapters.get(str(path))
        if known is not None and known[1] != mtime:
            with warnings.catch_warnings():  # peft warns that the active adapter goes; it is replaced below
                warnings.simplefilter("ignore", UserWarning)
                self._model.delete_adapter(known[0])  # retrained in place: drop the stale weights
            known = None
        if known is None:
            self._graphs.clear()  # the LoRA modules change: graphs captured before would replay stale ones
            self._adapter_names += 1
            name = f"adapter{self._adapter_names}"  # never reused, so a reload cannot clash with a live name
            try:
                if isinstance(self._model, PeftModel):
                    self._model.load_adapter(str(path), adapter_name=name, is_trainable=False)
                else:
                    self._model = PeftModel.from_pretrained(self._model, str(path), adapter_name=name,
                                                            is_trainable=False)
            except (RuntimeError, ValueError, KeyError) as exc:
                raise BadConfig(f"adapter {path} does not fit model {self._key[0]!r}: {str(exc).splitlines()[0]}",
                                file=str(path), field="adapter") from None
            self._model.eval()
            self._adapters[str(path)] = (name, mtime)
        self._model.set_adapter(self._adapters[str(path)][0])

    # ------------------------------------------------------------------ request
    def generate(self, params: Dict[str, Any], notify: Optional[Callable[[Dict[str, Any]], None]] = None,
                 download: Optional[Report] = None, cancel: Any = None) -> Dict[str, Any]:
        """The generate request; with params.streamId, `notify` gets GenerateDidStreamParams as text grows;
        `download` sees the bytes of a hub model's weights fetched before its first load (hub_pull.Progress); `cancel`
        (a threading.Event) stops that download (hub_pull.Cancelled)."""
        if not isinstance(params, dict):
            raise InvalidParams("generate: params must be an object.")
        config = parse_config(params.get("config"))
        records = params.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise InvalidParams("generate: records must be a list of objects.", field="records")
        adapter = params.get("adapter")
        if adapter is not None and not isinstance(adapter, str):
            raise InvalidParams("generate: adapter must be a folder path or null.", field="adapter")
        max_new = _param(params, "maxNewTokens", int, 128, minimum=1)
        temperature = float(_param(params, "temperature", (int, float), 0, minimum=0))
        top_p = float(_param(params, "topP", (int, float), 1.0, minimum=0))
        if not 0 < top_p <= 1:
            raise InvalidParams("generate: topP must be in (0, 1].", field="topP")
        seed = _param(params, "seed", int, 0, minimum=0)
        batch_size = _param(params, "batchSize", int, 8, minimum=1)
        also_base = params.get("alsoBase", False)
        if not isinstance(also_base, bool):
            raise InvalidParams("generate: alsoBase must be true or false.", field="alsoBase")
        if also_base and adapter is None:
            raise InvalidParams("generate: alsoBase needs an adapter to compare the base with.", field="alsoBase")
        stream_id = params.get("streamId")
        if stream_id is not None and not isinstance(stream_id, str):
            raise InvalidParams("generate: streamId must be a string.", field="streamId")

        def emitter(first_index: int, rows_per_record: int) -> Optional[Emit]:
            """Row r of a batch starting at record first_index -> a generate/didStream notification."""
            if stream_id is None or notify is None:
                return None
            return lambda row, text, done: notify({
                "streamId": stream_id, "index": first_index + row // rows_per_record,
                "base": rows_per_record == 2 and row % 2 == 1, "text": text, "done": done})

        config = resolve_format(config)
        template = load_template(config.template) if config.data.format == "template" else None
        prompts = render_prompts(template, records) if template else []
        loading = time.perf_counter()
        self._base(config, download, cancel)
        if template is None:  # chat: the run's chat template, through the tokenizer just loaded
            chat = load_chat(config, self._tokenizer)
            prompts, stops = render_chat_prompts(chat, records), chat.stop
        else:
            stops = template.stop
        if adapter is not None:
            self._select_adapter(adapter)
        from peft import PeftModel
        use_base = adapter is None and isinstance(self._model, PeftModel)
        scope = self._model.disable_adapter() if use_base else contextlib.nullcontext()
        started = time.perf_counter()
        timing = {"loadSeconds": started - loading}  # ~0 when the model and the adapter were loaded before
        completions: List[Dict[str, Any]] = []
        if temperature > 0:
            torch.manual_seed(seed)
        if also_base:
            return {**self._generate_both(prompts, stops, config, started, max_new=max_new, temperature=temperature,
                                          top_p=top_p, batch_size=batch_size, emitter=emitter), **timing}
        with scope, torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                completions += generate_batch(self._model, self._tokenizer, prompts[start:start + batch_size],
                                              stops=stops, max_new=max_new, max_length=config.max_length,
                                              temperature=temperature, top_p=top_p, first_index=start,
                                              emit=emitter(start, 1), graphs=self._graphs)
        return {"completions": completions, "seconds": time.perf_counter() - started, **timing}

    def _generate_both(self, prompts: List[str], stops: Sequence[str], config: Config, started: float, *,
                       max_new: int, temperature: float, top_p: float, batch_size: int,
                       emitter: Callable[[int, int], Optional[Emit]]) -> Dict[str, Any]:
        """Each prompt as two rows of one batch, the active adapter's and the base's (batch_size records, so
        2 x batch_size rows per batch)."""
        name = self._model.active_adapter
        rows = [p for p in prompts for _ in range(2)]
        names = [n for _ in prompts for n in (name, "__base__")]
        out: List[Dict[str, Any]] = []
        with torch.inference_mode():
            for start in range(0, len(rows), 2 * batch_size):
                end = start + 2 * batch_size
                out += generate_batch(self._model, self._tokenizer, rows[start:end], stops=stops, max_new=max_new,
                                      max_length=config.max_length, temperature=temperature, top_p=top_p,
                                      first_index=start // 2, adapter_names=names[start:end], rows_per_record=2,
                                      emit=emitter(start // 2, 2), graphs=self._graphs)
        return {"completions": out[0::2], "baseCompletions": out[1::2], "seconds": time.perf_counter() - started}


def _dense_fits(model: Any) -> bool:
    """Decode 4-bit linears on dequantized copies of their weights (decode.py) when the GPU holds them twice over
    with 2 GiB to spare: several times faster on batches, and the room is there on most cards for the models QLoRA
    Studio trains; otherwise the 4-bit kernels."""
    need = decode.dense_bytes(model)
    if not need or not torch.cuda.is_available():
        return False
    free, _ = torch.cuda.mem_get_info()
    fits = free > 2 * need + (2 << 30)
    log.info("decode: %s 4-bit weights (%.1f GiB dense, %.1f GiB free)", "dequantized" if fits else "packed",
             need / 2**30, free / 2**30)
    return fits


def render_chat_prompts(chat: ChatData, records: List[Dict[str, Any]]) -> List[str]:
    """Each record's conversation up to its final assistant turn (or through its last user turn), with the
    template's generation prompt; a record that is no conversation is a BadDataset naming records[i]."""
    prompts = []
    for index, record in enumerate(records):
        try:
            prompts.append(chat.render_prompt(record))
        except BadDataset as exc:
            raise BadDataset(f"records[{index}]: {exc.message}", line=index + 1, field=exc.field) from None
    return prompts


def render_prompts(template: PromptTemplate, records: List[Dict[str, Any]]) -> List[str]:
    """The prompt part of each record; a missing or null prompt variable is a BadDataset naming records[i]."""
    needed = sorted(template.variables("prompt"))
    prompts = []
    for index, record in enumerate(records):
        for name in needed:
            if record.get(name) is None:
                has = ", ".join(sorted(record)) or "no fields"
                raise BadDataset(f"records[{index}]: field '{name}' used by the prompt of {template.name} is "
                                 f"{'null' if name in record else 'missing'} (record has: {has}).",
                                 line=index + 1, field=name)
        prompts.append(template.render_prompt(record))
    return prompts
