"""Adapters from transformers models to the :class:`~smcdiff.models.Denoiser` protocol.

=====================  =========================================================================
adapter                model
=====================  =========================================================================
``MaskedLMDenoiser``   any ``AutoModelForMaskedLM`` (BERT, ModernBERT, ...); mask id from the
                       tokenizer
``LLaDADenoiser``      LLaDA (remote code returning ``.logits``; mask 126336, EOS 126081,
                       EoT 126348 by default) or :class:`~smcdiff.models.llada_arch.SMCDiffLLaDAModel`
``DreamDenoiser``      Dream (Qwen2-style, logits right-shifted by one: position ``i`` is
                       predicted at output ``i - 1``); mask 151666 by default
=====================  =========================================================================

Common behaviour
----------------
* ``logits(tokens [R, L], attention_mask [R, L] | None) -> [R, L, V]``, with
  any shift undone, and ``suppress_ids`` set to ``-inf``.
* Left padding: padded keys are masked and, for models that take
  ``position_ids``, positions count real tokens only, so a prompt gives the same
  logits alone or batched with longer prompts (up to floating-point rounding).
* Models that accept a key/value cache get ``prefill`` / ``cached_logits`` for
  the prefix cache (:mod:`smcdiff.proposals.cache`). Whether the model can run
  it is probed once (``supports_prefix_cache``); ``require_prefix_cache()``,
  which ``SMC.init`` calls for ``cache="prefix"``, raises
  :class:`~smcdiff.ConfigError` naming the fix for a model that cannot (the
  official LLaDA remote code asserts ``past_key_values is None and not
  use_cache``), before any work.
* Ids read from a config count whenever they are set (0 included).
* transformers 4.45 to 5.x: ``dtype`` / ``torch_dtype`` and the cache classes
  of both are bridged.
* ``from_pretrained(path)`` loads from a local directory (no hub access is
  attempted when ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, ModelOutputError
from .cache import KVCache

__all__ = ["HFDenoiser", "MaskedLMDenoiser", "LLaDADenoiser", "DreamDenoiser", "positions_from_mask"]

LLADA_MASK_ID = 126336
LLADA_EOS_ID = 126081
LLADA_EOT_ID = 126348
DREAM_MASK_ID = 151666


def positions_from_mask(attention_mask: Tensor) -> Tensor:
    """Position ids that count real tokens only: ``cumsum(mask) - 1``, clamped at 0 on padding."""
    am = attention_mask.to(torch.long)
    return (am.cumsum(dim=-1) - 1).clamp(min=0)


def _forward_params(model) -> set[str]:
    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):  # pragma: no cover
        return set()


def _out_cache(out):
    for name in ("cache", "past_key_values"):
        try:
            val = out[name] if isinstance(out, dict) else getattr(out, name, None)
        except KeyError:
            val = None
        if val is not None:
            return val
    return None


def _first_set(*values):
    """The first value that is not None (0 counts as set), or None."""
    for v in values:
        if v is not None:
            return v
    return None


def _kv_layers(cache) -> list[tuple[Tensor, Tensor]]:
    """Per-layer ``(k, v)`` ``[R, H, T, D]`` from a transformers Cache or a tuple of pairs."""
    if hasattr(cache, "layers"):  # transformers >= 4.55
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):  # older DynamicCache
        return list(zip(cache.key_cache, cache.value_cache))
    return [(kv[0], kv[1]) for kv in cache]


def _native_dynamic_cache(layers):
    """A transformers ``DynamicCache`` holding ``layers`` without copying them.

    ``DynamicCache(ddp_cache_data=...)`` from transformers 4.56 on (5.x has no
    ``from_legacy_cache``); before that ``from_legacy_cache`` (in 4.55 the
    constructor leaves an empty first layer in front of the given ones).
    """
    from transformers import DynamicCache

    pairs = [(k, v) for k, v in layers]
    cache = None
    if "ddp_cache_data" in inspect.signature(DynamicCache.__init__).parameters:
        cache = DynamicCache(ddp_cache_data=pairs)
    if cache is None or len(getattr(cache, "layers", ())) != len(pairs):  # pragma: no cover - transformers < 4.56
        cache = DynamicCache.from_legacy_cache(tuple(pairs))
    return cache


class HFDenoiser:
    """Base adapter for a transformers-style model returning ``.logits``.

    Args:
        model: the torch module (in eval mode).
        mask_id: id of the mask token.
        eos_ids: end-of-sequence ids (EOS first).
        pad_id: padding id for batched prompts of different lengths.
        suppress_ids: ids whose logits are always ``-inf`` (e.g. special tokens).
        shift: 1 for models whose output ``i`` predicts position ``i + 1`` (Dream).
        tokenizer: optional tokenizer kept for decoding.
        attention_mask_format: ``"2d"`` (``[R, L]``) or ``"4d"`` (Dream's ``[R, 1, L, L]``).
    """

    shift: int = 0

    def __init__(
        self,
        model,
        mask_id: int,
        eos_ids: Sequence[int] = (),
        pad_id: int | None = None,
        suppress_ids: Sequence[int] = (),
        shift: int | None = None,
        tokenizer=None,
        attention_mask_format: str = "2d",
        vocab_size: int | None = None,
    ) -> None:
        self.model = model
        self.mask_id = int(mask_id)
        self.eos_ids = tuple(int(e) for e in eos_ids)
        self.pad_id = None if pad_id is None else int(pad_id)
        self.suppress_ids = tuple(int(i) for i in suppress_ids)
        if shift is not None:
            self.shift = int(shift)
        if self.shift not in (0, 1):
            raise ConfigError(f"shift must be 0 or 1; got {self.shift}")
        self.tokenizer = tokenizer
        if attention_mask_format not in ("2d", "4d"):
            raise ConfigError(f"attention_mask_format must be '2d' or '4d'; got {attention_mask_format!r}")
        self.attention_mask_format = attention_mask_format
        cfg = getattr(model, "config", None)
        v = vocab_size if vocab_size is not None else getattr(cfg, "vocab_size", None)
        if v is None:
            raise ConfigError("cannot tell the model's vocabulary size; pass vocab_size=")
        self.vocab_size = int(v)
        n_emb = None
        emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        if emb is not None and hasattr(emb, "num_embeddings"):
            n_emb = int(emb.num_embeddings)
        upper = n_emb if n_emb is not None else self.vocab_size
        if not 0 <= self.mask_id < upper:
            raise ConfigError(
                f"mask_id {self.mask_id} is not a token of this model (it has {upper} input embeddings); "
                f"check the mask id for this checkpoint"
            )
        if self.pad_id is not None and self.pad_id == self.mask_id:
            raise ConfigError(f"pad_id ({self.pad_id}) must differ from mask_id ({self.mask_id})")
        params = _forward_params(model)
        self._takes_positions = "position_ids" in params
        self._cache_kw = "cache" if "cache" in params else ("past_key_values" if "past_key_values" in params else None)
        self._native_cache = False  # set by prefill(): True when the model returns a transformers Cache
        self._cache_problem: str | None = None  # set by the first prefix-cache check; "" when the cache works
        self.n_forward = 0

    # ------------------------------------------------------------------ basics
    @property
    def max_positions(self) -> int | None:
        """The longest canvas the model accepts: ``config.max_position_embeddings`` (None if not set)."""
        v = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        return int(v) if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None

    def check_canvas(self, canvas) -> None:
        """Refuse a canvas (prompt + generation, or template) longer than the model's positions.

        Called by ``SMC.init`` / ``SMC.init_template`` before anything is allocated, so
        the error names the lengths instead of a shape error deep inside transformers.
        """
        m = self.max_positions
        if m is not None and canvas.length > m:
            what = (
                f"the template length {canvas.length}"
                if canvas.template
                else f"prompt length {canvas.prompt_length} + gen_length {canvas.gen_length} = {canvas.length}"
            )
            raise ConfigError(
                f"{what} exceeds the model's maximum of {m} positions (config.max_position_embeddings); "
                f"shorten the prompt or lower gen_length"
            )

    @property
    def device(self) -> torch.device:
        """Where the inputs go: the device of the network's first parameters (the embeddings)."""
        try:
            return next(self.model.parameters()).device
        except StopIteration:  # pragma: no cover
            return torch.device("cpu")

    @property
    def output_device(self) -> torch.device:
        """Where the logits come out: the output head's device (differs from :attr:`device` when the
        network is split over devices with ``device_map``). When accelerate's top-level hook moves the
        outputs back to the inputs' device (``io_same_device``), that is :attr:`device`."""
        hook = getattr(self.model, "_hf_hook", None)
        if hook is not None and getattr(hook, "io_same_device", False):
            return self.device
        head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        w = getattr(head, "weight", None)
        return w.device if isinstance(w, torch.Tensor) else self.device

    #: appended to the error raised when the model cannot run the prefix cache
    _cache_hint = (
        "Load the model with a modeling file whose forward accepts past_key_values and use_cache=True, "
        "or run without the prefix cache (cache=None)."
    )

    @property
    def supports_prefix_cache(self) -> bool:
        """Whether :meth:`prefill` / :meth:`cached_logits` work with this model.

        The first call probes the model once with a three-token forward with
        ``use_cache=True`` and one cached forward (the call counter ``n_forward``
        is left as it was); later calls reuse the answer.
        """
        return not self._prefix_cache_problem()

    def _prefix_cache_problem(self) -> str:
        """Why the prefix cache cannot run with this model ("" if it can)."""
        if self._cache_kw is None:
            return f"{type(self.model).__name__}.forward takes no past_key_values (or cache) argument"
        if self._cache_problem is None:
            self._cache_problem = self._probe_prefix_cache()
        return self._cache_problem

    def _probe_prefix_cache(self) -> str:
        n_forward = self.n_forward
        tokens = torch.full((1, 3), self.mask_id, dtype=torch.long, device=self.device)
        try:
            _, kv = self.prefill(tokens, None, 2)
            out = self.cached_logits(tokens, None, kv)
        except Exception as e:  # the model's own refusal, e.g. an AssertionError in its forward
            err = e.__cause__ if isinstance(e, ConfigError) and e.__cause__ is not None else e
            return f"{type(self.model).__name__} failed with use_cache=True ({type(err).__name__}: {err})"
        finally:
            self.n_forward = n_forward
        if tuple(out.shape[:2]) != (1, tokens.shape[1] - kv.start):
            return f"{type(self.model).__name__} returned logits of shape {tuple(out.shape)} from a cached forward"
        return ""

    def _cache_error(self, problem: str) -> ConfigError:
        return ConfigError(
            f"the prefix cache (cache='prefix') cannot run with this model: {problem}. {self._cache_hint}"
        )

    def require_prefix_cache(self) -> None:
        """Raise :class:`~smcdiff.ConfigError` naming the problem and the fix if the prefix cache cannot run."""
        problem = self._prefix_cache_problem()
        if problem:
            raise self._cache_error(problem)

    def _mask_arg(self, am: Tensor | None, q_start: int = 0) -> Tensor | None:
        if am is None:
            return None
        if self.attention_mask_format == "4d":
            b = am.to(torch.bool)
            return b[:, None, None, :] & b[:, None, q_start:, None]
        return am.to(torch.long)

    def _call(self, tokens: Tensor, am: Tensor | None, positions: Tensor | None, cache=None, use_cache: bool = False):
        kwargs = {}
        if am is not None:
            kwargs["attention_mask"] = self._mask_arg(am, am.shape[1] - tokens.shape[1])
        if positions is not None and self._takes_positions:
            kwargs["position_ids"] = positions
        if cache is not None:
            kwargs[self._cache_kw] = cache
        if use_cache:
            kwargs["use_cache"] = True
        self.n_forward += 1
        return self.model(input_ids=tokens, **kwargs)

    def _post(self, logits: Tensor) -> Tensor:
        if self.suppress_ids:
            logits = logits.clone()
            logits[..., list(self.suppress_ids)] = float("-inf")
        return logits

    @torch.no_grad()
    def logits(self, tokens: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """``[R, L]`` -> ``[R, L, V]`` for position ``i`` (shift undone)."""
        tokens = tokens.to(self.device)
        am = None
        if attention_mask is not None and not bool(attention_mask.all()):
            am = attention_mask.to(self.device)
        out = self._call(tokens, am, None if am is None else positions_from_mask(am))
        raw = out["logits"] if isinstance(out, dict) else out.logits
        if self.shift:
            raw = self._unshift(raw, am)
        return self._post(raw)

    @staticmethod
    def _unshift(raw: Tensor, am: Tensor | None) -> Tensor:
        """Undo a right-shift: position ``i`` reads output ``i - 1``, and each row's first real position its own.

        Dream's rule for position 0 (``cat([logits[:, :1], logits[:, :-1]])``) applied per row
        at the first attended position, so a row padded on the left reads the same logits as
        the row alone, never a padding column's.
        """
        out = torch.cat([raw[:, :1], raw[:, :-1]], dim=1)
        if am is not None:
            first = am.to(torch.long).argmax(dim=1)
            rows = torch.nonzero(first > 0).flatten()
            if rows.numel():
                out = out.clone()
                out[rows, first[rows]] = raw[rows, first[rows]]
        return out

    # ------------------------------------------------------------------ prefix cache
    def _to_native(self, kv: KVCache):
        if not self._native_cache:
            return tuple(kv.layers)
        return _native_dynamic_cache(kv.layers)

    @torch.no_grad()
    def prefill(
        self, tokens: Tensor, attention_mask: Tensor | None, prefix_len: int, suffix_start: int | None = None
    ) -> tuple[Tensor, KVCache]:
        """Full forward; returns logits ``[R, L, V]`` and the cache of the positions before ``prefix_len``
        (and, with ``suffix_start``, of those from ``suffix_start`` on: Fast-dLLM's dual cache).

        A model that refuses the cache (e.g. an ``AssertionError`` in its forward,
        as in the official GSAI-ML LLaDA code) raises :class:`~smcdiff.ConfigError`
        naming the fix; :meth:`require_prefix_cache` checks this before any work.
        """
        if self._cache_kw is None or self._cache_problem:  # known not to work: no forward pass
            raise self._cache_error(self._prefix_cache_problem())
        if suffix_start is not None:
            self.require_dual_cache()
        tokens = tokens.to(self.device)
        am = None if attention_mask is None or bool(attention_mask.all()) else attention_mask.to(self.device)
        try:
            out = self._call(tokens, am, None if am is None else positions_from_mask(am), use_cache=True)
        except AssertionError as e:  # e.g. "The kvcache is not supported" in remote code
            problem = f"{type(self.model).__name__} failed with use_cache=True (AssertionError: {e})"
            raise self._cache_error(problem) from e
        raw = out["logits"] if isinstance(out, dict) else out.logits
        cache = _out_cache(out)
        if cache is None:
            raise ModelOutputError(f"{type(self.model).__name__} returned no cache with use_cache=True")
        self._native_cache = not isinstance(cache, (tuple, list))
        keep = max(int(prefix_len) - self.shift, 0)
        if suffix_start is not None:
            e = int(suffix_start)
            layers = tuple(
                (torch.cat([k[:, :, :keep], k[:, :, e:]], dim=2).contiguous(),
                 torch.cat([v[:, :, :keep], v[:, :, e:]], dim=2).contiguous())
                for k, v in _kv_layers(cache)
            )
            return self._post(raw), KVCache(layers, keep, int(prefix_len), e)
        layers = tuple((k[:, :, :keep].contiguous(), v[:, :, :keep].contiguous()) for k, v in _kv_layers(cache))
        if self.shift:
            raw = self._unshift(raw, am)
        return self._post(raw), KVCache(layers, keep, int(prefix_len))

    @torch.no_grad()
    def cached_logits(self, tokens: Tensor, attention_mask: Tensor | None, cache: KVCache) -> Tensor:
        """Logits ``[R, L - prefix, V]`` of positions ``prefix .. L-1`` given the cached prefix.

        ``tokens`` is the full canvas ``[R, L]``; only the part after the cached
        positions is run through the model.
        """
        tokens = tokens.to(self.device)
        p, start = cache.prefix_len, cache.start
        am = None if attention_mask is None or bool(attention_mask.all()) else attention_mask.to(self.device)
        if cache.suffix_start is not None:
            return self._dual_cached_logits(tokens, am, cache)
        if p == 0:
            # nothing cached (e.g. a shifted model whose block starts at position 1): full forward
            return self.logits(tokens, attention_mask)[:, start:]
        pos = None
        if am is not None:
            pos = positions_from_mask(am)[:, p:]
        elif self._takes_positions:
            pos = torch.arange(p, tokens.shape[1], device=tokens.device).expand(tokens.shape[0], -1)
        out = self._call(tokens[:, p:], am, pos, cache=self._to_native(cache), use_cache=True)
        raw = out["logits"] if isinstance(out, dict) else out.logits
        # raw[:, j] belongs to input position p + j; with a shift it predicts position p + j + 1
        if not self.shift:
            return self._post(raw)
        res = raw[:, :-1]
        if am is not None:  # a row whose first real position is p + 1 reads its own output there
            first = am.to(torch.long).argmax(dim=1)
            rows = torch.nonzero(first == p + 1).flatten()
            if rows.numel():
                res = res.clone()
                res[rows, 0] = raw[rows, 1]
        return self._post(res)

    def require_dual_cache(self) -> None:
        """Raise :class:`~smcdiff.ConfigError` if this model cannot run the dual cache (before any work)."""
        if self.shift:
            raise ConfigError(
                f"cache='dual' is for models whose logit i predicts position i (LLaDA-style); "
                f"{type(self).__name__} shifts its logits. Use cache='prefix' or None"
            )
        if not self._takes_positions:
            raise ConfigError(
                f"cache='dual' runs the block alone and must give it its positions; "
                f"{type(self.model).__name__}.forward takes no position_ids. Use cache='prefix' or None"
            )

    def _dual_cached_logits(self, tokens: Tensor, am: Tensor | None, cache: KVCache) -> Tensor:
        """Logits ``[R, e - s, V]`` of the block ``[s, e)``, attending to the cached prefix and suffix."""
        s, e = cache.start, cache.suffix_start
        blk = tokens[:, s:e]
        if am is not None:
            pos = positions_from_mask(am)[:, s:e]
            keys = torch.cat([am[:, :s], am[:, e:], am[:, s:e]], dim=1)  # the cached keys come first
        else:
            pos = torch.arange(s, e, device=tokens.device).expand(tokens.shape[0], -1)
            keys = None
        out = self._call(blk, keys, pos, cache=self._to_native(cache), use_cache=True)
        raw = out["logits"] if isinstance(out, dict) else out.logits
        return self._post(raw)

    def decode(self, ids) -> str:
        if self.tokenizer is None:
            raise ConfigError("this adapter has no tokenizer")
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "tokenizer.model", "vocab.json")


def _load_tokenizer(path: str, trust_remote_code: bool = False):
    """The tokenizer saved in ``path``, or None if the directory holds none."""
    import os

    if not os.path.isdir(path) or not any(os.path.exists(os.path.join(path, f)) for f in _TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)


def _placement(device, device_map) -> dict:
    """``from_pretrained`` keywords for ``device_map`` (accelerate), refusing it together with ``device``."""
    if device_map is None:
        return {}
    if device is not None:
        raise ConfigError(
            f"give device={device!r} (one device) or device_map={device_map!r} (accelerate splits the model over "
            f"the devices), not both"
        )
    try:
        import accelerate  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"device_map={device_map!r} needs the accelerate package (pip install accelerate)") from e
    return {"device_map": device_map}


def _wrap_loaded(cls, model, path: str, device, trust_remote_code: bool, kwargs: dict):
    """Eval mode, move to ``device``, load the tokenizer saved beside the model, and ``cls.wrap``."""
    model = model.eval()
    if device is not None:
        model = model.to(device)
    tok = kwargs.pop("tokenizer", None)
    if tok is None:
        tok = _load_tokenizer(path, trust_remote_code)
    return cls.wrap(model, tokenizer=tok, **kwargs)


def _dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, str(dtype))


def _dtype_kwargs(dtype) -> dict:
    """``from_pretrained`` keyword for a dtype: ``dtype=`` (transformers >= 4.56) or ``torch_dtype=`` before."""
    dtype = _dtype(dtype)
    if dtype is None:
        return {}
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


class MaskedLMDenoiser(HFDenoiser):
    """Any ``AutoModelForMaskedLM``: the MLM head gives the clean-token logits directly.

    The mask id comes from ``mask_id=`` or the tokenizer; special tokens other
    than the mask (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``) are suppressed by
    default (``suppress_special=True``) so they are never generated.

    Without a tokenizer saved beside the checkpoint the special ids are taken from the
    model config (``pad/bos/eos/cls/sep/unk_token_id``); if the config names none,
    ``from_pretrained`` raises unless ``suppress_ids=`` names them (or
    ``suppress_special=False`` says that nothing is to be suppressed), and when the config
    names only some of them it warns that the others (e.g. ``[CLS]``) can be generated.
    """

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        mask_id: int | None = None,
        suppress_special: bool = True,
        device: str | torch.device | None = None,
        dtype=None,
        device_map=None,
        **kwargs,
    ) -> "MaskedLMDenoiser":
        from transformers import AutoModelForMaskedLM

        place = _placement(device, device_map)
        model = AutoModelForMaskedLM.from_pretrained(path, **_dtype_kwargs(dtype), **place).eval()
        if device is not None:
            model = model.to(device)
        tok = _load_tokenizer(path)
        if mask_id is None:
            mask_id = getattr(tok, "mask_token_id", None)
        if mask_id is None:
            raise ConfigError(f"no mask id: {path} has no tokenizer with a mask token; pass mask_id=")
        pad_id = getattr(tok, "pad_token_id", None) if tok is not None else getattr(model.config, "pad_token_id", None)
        given = kwargs.pop("suppress_ids", None)
        suppress: list[int] = list(given or ())
        if suppress_special and tok is not None:
            suppress += [i for i in getattr(tok, "all_special_ids", []) if i != mask_id]
        elif suppress_special and given is None:
            suppress += _config_special_ids(model.config, int(mask_id), path)
        eos = kwargs.pop("eos_ids", ())
        return cls(model, mask_id, eos_ids=eos, pad_id=pad_id, suppress_ids=sorted(set(suppress)), tokenizer=tok, **kwargs)


_SPECIAL_KEYS = ("pad_token_id", "bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id", "unk_token_id")


def _config_special_ids(cfg, mask_id: int, path: str) -> list[int]:
    """Special token ids named by a model config (no tokenizer to ask); raise if it names none."""
    found: dict[str, int] = {}
    for key in _SPECIAL_KEYS:
        v = getattr(cfg, key, None)
        for i in v if isinstance(v, (list, tuple)) else [v]:
            if isinstance(i, int) and not isinstance(i, bool) and i >= 0 and i != mask_id:
                found.setdefault(key, i)
    if not found:
        raise ConfigError(
            f"suppress_special=True but {path} has no tokenizer and its config names no special token ids "
            f"({', '.join(_SPECIAL_KEYS)}); special tokens such as [CLS]/[SEP]/[PAD]/[UNK] could be generated. "
            f"Pass suppress_ids=[...] (the ids never to generate), save the tokenizer beside the model, or pass "
            f"suppress_special=False"
        )
    kinds = {"[PAD]": ("pad_token_id",), "[UNK]": ("unk_token_id",), "[CLS]/<s>": ("cls_token_id", "bos_token_id"),
             "[SEP]/</s>": ("sep_token_id", "eos_token_id")}
    missing = [name for name, keys in kinds.items() if not any(k in found for k in keys)]
    if missing:
        import warnings

        warnings.warn(
            f"{path} has no tokenizer; suppressing the special ids its config names ({found}), but the config names "
            f"no id for {', '.join(missing)}, so such tokens can be generated. Pass suppress_ids=[...] to name them "
            f"or save the tokenizer beside the model",
            UserWarning,
            stacklevel=3,
        )
    return sorted(set(found.values()))


class LLaDADenoiser(HFDenoiser):
    """LLaDA: a remote-code mask predictor returning ``.logits`` (GSAI-ML/LLaDA-8B-*).

    Defaults follow ML-GSAI/LLaDA: mask id 126336, EOS 126081, EoT 126348, no
    logit shift, and a prefix cache through ``past_key_values`` (as in
    NVlabs/Fast-dLLM). A config with ``mask_token_id`` / ``eos_token_id`` /
    ``eot_token_id`` (as :class:`SMCDiffLLaDAConfig`) overrides the defaults
    (an id of 0 counts as set).

    The official GSAI-ML LLaDA remote code refuses a key/value cache (its
    forward asserts ``past_key_values is None and not use_cache``); with it,
    ``cache="prefix"`` raises :class:`~smcdiff.ConfigError` at ``SMC.init``.
    Load the checkpoint with a cache-capable modeling file (NVlabs/Fast-dLLM's
    ``llada/model/modeling_llada.py``) to use the prefix cache.
    """

    _cache_hint = (
        "The official GSAI-ML LLaDA remote code (modeling_llada.py) asserts `past_key_values is None and not "
        "use_cache`, so it cannot run the prefix cache: load the checkpoint with a modeling file that supports "
        "the cache, such as the modified llada/model/modeling_llada.py of NVlabs/Fast-dLLM (put it in the "
        "checkpoint directory in place of modeling_llada.py, or build the model with its LLaDAModelLM and use "
        "LLaDADenoiser.wrap), or run without the prefix cache (cache=None)."
    )

    @classmethod
    def from_pretrained(
        cls, path: str, device: str | torch.device | None = None, dtype=None, trust_remote_code: bool = True,
        device_map=None, **kwargs
    ) -> "LLaDADenoiser":
        from transformers import AutoModel

        from . import llada_arch  # noqa: F401 - registers the bundled architecture

        place = _placement(device, device_map)
        model = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code, **_dtype_kwargs(dtype), **place)
        return _wrap_loaded(cls, model, path, device, trust_remote_code, kwargs)

    @classmethod
    def wrap(cls, model, tokenizer=None, **kwargs) -> "LLaDADenoiser":
        cfg = getattr(model, "config", None)
        mask_id = _first_set(kwargs.pop("mask_id", None), getattr(cfg, "mask_token_id", None), LLADA_MASK_ID)
        eos = getattr(cfg, "eos_token_id", None)
        eot = getattr(cfg, "eot_token_id", None)
        default_eos = (LLADA_EOS_ID if eos is None else int(eos), LLADA_EOT_ID if eot is None else int(eot))
        eos_ids = kwargs.pop("eos_ids", default_eos)
        pad_id = kwargs.pop("pad_id", getattr(tokenizer if tokenizer is not None else cfg, "pad_token_id", None))
        if pad_id is not None and int(pad_id) == int(mask_id):
            pad_id = None
        return cls(model, mask_id, eos_ids=eos_ids, pad_id=pad_id, tokenizer=tokenizer, **kwargs)


class DreamDenoiser(HFDenoiser):
    """Dream (Dream-org/Dream-v0-*): a Qwen2-style network whose logits are right-shifted.

    Output ``i`` of the network predicts position ``i + 1``; the adapter undoes
    the shift so that ``logits[:, i]`` is position ``i`` and position 0 keeps the
    first output, as Dream's ``diffusion_generate`` does. Default mask id 151666;
    EOS from the config. Dream's own remote code takes a 4-D attention mask
    (``attention_mask_format="4d"``, chosen automatically for ``model_type ==
    "Dream"``); transformers' Qwen2 takes the usual 2-D mask.
    """

    shift = 1

    @classmethod
    def from_pretrained(
        cls, path: str, device: str | torch.device | None = None, dtype=None, trust_remote_code: bool = True,
        device_map=None, **kwargs
    ) -> "DreamDenoiser":
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

        place = _placement(device, device_map)
        cfg = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        loader = AutoModel if getattr(cfg, "auto_map", None) else AutoModelForCausalLM
        model = loader.from_pretrained(path, trust_remote_code=trust_remote_code, **_dtype_kwargs(dtype), **place)
        return _wrap_loaded(cls, model, path, device, trust_remote_code, kwargs)

    @classmethod
    def wrap(cls, model, tokenizer=None, **kwargs) -> "DreamDenoiser":
        cfg = getattr(model, "config", None)
        gen = getattr(model, "generation_config", None)
        mask_id = _first_set(
            kwargs.pop("mask_id", None),
            getattr(cfg, "mask_token_id", None),
            getattr(gen, "mask_token_id", None),
            DREAM_MASK_ID,
        )
        eos = _first_set(getattr(gen, "eos_token_id", None), getattr(cfg, "eos_token_id", None))
        eos_ids = kwargs.pop("eos_ids", () if eos is None else (tuple(eos) if isinstance(eos, (list, tuple)) else (eos,)))
        pad_id = kwargs.pop("pad_id", getattr(cfg, "pad_token_id", None))
        if pad_id is not None and int(pad_id) == int(mask_id):
            pad_id = None
        fmt = kwargs.pop("attention_mask_format", "4d" if getattr(cfg, "model_type", "") == "Dream" else "2d")
        return cls(model, mask_id, eos_ids=eos_ids, pad_id=pad_id, tokenizer=tokenizer, attention_mask_format=fmt, **kwargs)
