"""Chronos models: load once, predict one context, return one internal form for all three families.

T5 returns sample paths; Bolt and Chronos-2 return quantiles. `Forecast` carries either, and the
metrics in `bot.core.metrics` understand both.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bot.core.config import Family
from bot.core.metrics import Forecast
from bot.errors import ModelError
from bot.settings import torch_threads

if TYPE_CHECKING:  # torch is imported lazily: `chronops --help` should not pay for it
    from bot.adapters.t5_sampler import T5Sampler

log = logging.getLogger(__name__)


class Model(Protocol):
    """What the engine and the reports need from a model: its identity and `predict`."""

    model_id: str
    family: Family
    revision: str

    def predict(
        self,
        context: np.ndarray,
        prediction_length: int,
        *,
        num_samples: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        sample_chunk: int = 50,
    ) -> tuple[Forecast, float]: ...


@dataclass
class LoadedModel:
    model_id: str
    family: Family
    revision: str
    pipeline: Any
    device: str
    sampler: T5Sampler | None = None  # the shared-context T5 sampler; None = stock pipeline

    def predict(
        self,
        context: np.ndarray,
        prediction_length: int,
        *,
        num_samples: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        sample_chunk: int = 50,
    ) -> tuple[Forecast, float]:
        """Forecast `prediction_length` steps after `context` (1-D, oldest first).

        Returns the forecast and the wall seconds the model took. T5 draws `num_samples` paths in
        random streams of `sample_chunk` rows, stream i seeded from (seed, i): the first k draws are
        the same whatever the total when k is a multiple of `sample_chunk`.
        """
        import torch

        ctx = torch.tensor(np.asarray(context, dtype=np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "prediction length > 64" advice is documented, not an error
            if self.family is Family.T5:
                total = int(num_samples or 20)
                stream = max(1, sample_chunk)
                started = time.perf_counter()
                if self.sampler is not None:
                    samples = self.sampler.sample(
                        ctx, prediction_length, num_samples=total, temperature=temperature,
                        top_k=top_k, top_p=top_p, seed=seed, stream_size=stream,
                    )  # fmt: skip
                    return Forecast.from_samples(
                        samples.numpy().astype(np.float64)
                    ), time.perf_counter() - started
                # Stock pipeline (CHRONOPS_T5_SAMPLER=stock or a failed self-check): one call per
                # stream, so peak memory scales with the stream, not the total.
                chunks: list[np.ndarray] = []
                for i, start in enumerate(range(0, total, stream)):
                    torch.manual_seed(seed * 1_000_003 + i)
                    out = self.pipeline.predict(
                        ctx,
                        prediction_length=prediction_length,
                        num_samples=min(stream, total - start),
                        temperature=temperature,
                        top_k=top_k,
                        top_p=top_p,
                    )
                    chunks.append(out[0].numpy().astype(np.float64))
                return Forecast.from_samples(np.concatenate(chunks, axis=0)), time.perf_counter() - started
            torch.manual_seed(seed)
            levels = tuple(float(q) for q in self.pipeline.quantiles)
            started = time.perf_counter()
            if self.family is Family.BOLT:
                quantiles = self.pipeline.predict(ctx, prediction_length=prediction_length)[0]
            else:
                quantiles = self.pipeline.predict([ctx], prediction_length=prediction_length)[0][0]
            elapsed = time.perf_counter() - started
            return Forecast.from_quantiles(levels, quantiles.numpy().astype(np.float64)), elapsed


def _detect_family(pipeline: Any) -> Family:
    name = type(pipeline).__name__
    if name == "ChronosPipeline":
        return Family.T5
    if name == "ChronosBoltPipeline":
        return Family.BOLT
    if name == "Chronos2Pipeline":
        return Family.CHRONOS2
    raise ModelError(f"unsupported Chronos pipeline class {name}")


def t5_sampler_choice() -> str:
    """CHRONOPS_T5_SAMPLER: `shared` (default, context encoded once for all samples) or `stock`."""
    choice = os.environ.get("CHRONOPS_T5_SAMPLER", "shared").strip().lower() or "shared"
    if choice not in ("shared", "stock"):
        raise ModelError(f"CHRONOPS_T5_SAMPLER='{choice}': use 'shared' or 'stock'")
    return choice


def _t5_sampler(pipeline: Any, model_id: str) -> T5Sampler | None:
    if t5_sampler_choice() == "stock":
        return None
    from bot.adapters.t5_sampler import T5Sampler

    try:
        sampler = T5Sampler(pipeline)
        problem = sampler.self_check()
    except Exception as exc:  # any incompatibility means: use the stock pipeline
        problem = f"{type(exc).__name__}: {str(exc)[:200]}"
    if problem is None:
        return sampler
    pipeline.model.model.set_attn_implementation("sdpa")
    log.warning("model %s: shared-context sampler disabled (%s); using the stock pipeline", model_id, problem)
    return None


def model_revision(model_id: str) -> str:
    """A local directory's revision is a hash of its config and weights' sizes/mtimes; hub ids use 'main'."""
    path = Path(model_id)
    if path.is_dir():
        import hashlib

        h = hashlib.sha256()
        for f in sorted(path.iterdir()):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}".encode())
                if f.suffix == ".json":
                    h.update(f.read_bytes())
        return "dir-" + h.hexdigest()[:12]
    return os.environ.get("CHRONOPS_MODEL_REVISION", "main")


_CACHE: dict[tuple[str, str], LoadedModel] = {}


def announce(line: str) -> None:
    """A progress line on stderr for a person watching (a terminal, or CHRONOPS_PROGRESS=1): loading
    torch and a model takes seconds, which used to pass in silence. Scripts reading stderr see nothing."""
    import os
    import sys

    if sys.stderr.isatty() or os.environ.get("CHRONOPS_PROGRESS") == "1":
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _resolve(model_id: str, workspace: Path | None) -> str:
    if workspace is not None and not Path(model_id).is_absolute() and (workspace / model_id).is_dir():
        return str(workspace / model_id)
    return model_id


class LazyModel:
    """A model that loads (and imports torch and chronos) on its first `predict`.

    Its identity (model_id, family from the config, revision) needs no torch, so a run whose
    forecasts all come from the backtest cache (a weekly rerun) never pays the ~10 s import and
    load. A family mismatch is reported at that first predict.
    """

    def __init__(self, model_id: str, family: Family, *, workspace: Path | None = None) -> None:
        self.model_id = model_id
        self.family = family
        self.workspace = workspace
        self.revision = model_revision(_resolve(model_id, workspace))
        self._loaded: LoadedModel | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.model_id, expected_family=self.family, workspace=self.workspace)
        return self._loaded

    def predict(
        self,
        context: np.ndarray,
        prediction_length: int,
        *,
        num_samples: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        sample_chunk: int = 50,
    ) -> tuple[Forecast, float]:
        return self.load().predict(
            context, prediction_length, num_samples=num_samples, temperature=temperature, top_k=top_k,
            top_p=top_p, seed=seed, sample_chunk=sample_chunk,
        )  # fmt: skip


def load_model(
    model_id: str, *, expected_family: Family | None = None, workspace: Path | None = None
) -> LoadedModel:
    """Load a Chronos pipeline from a Hugging Face id or a local directory (cached per process)."""
    resolved = _resolve(model_id, workspace)
    if not any(key[0] == resolved for key in _CACHE):
        announce(f"loading model {model_id} …")
    device = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            device = "cuda"
    except ImportError as exc:  # pragma: no cover - torch is a hard dependency
        raise ModelError(f"torch is not installed ({exc}); run: pip install torch==2.13.0") from None
    threads = torch_threads()
    if threads:
        # Oversubscribed CPUs (several processes each spinning torch's default thread pool) can make
        # generation 10x slower; pin the pool when the host is shared.
        torch.set_num_threads(threads)
    key = (resolved, device)
    if key in _CACHE:
        return _CACHE[key]
    started = time.perf_counter()
    try:
        from chronos import BaseChronosPipeline
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]

        looks_local = resolved.startswith((".", "/")) or Path(resolved).exists()
        if looks_local and not Path(resolved).is_dir():
            raise ModelError(f"model_id '{model_id}': directory not found")
        pipeline = BaseChronosPipeline.from_pretrained(resolved, device_map=device, dtype="float32")
    except ModelError:
        raise
    except OSError as exc:
        raise ModelError(
            f"model_id '{model_id}' could not be loaded ({str(exc).splitlines()[0][:160]}); "
            "if the Hugging Face hub is unreachable, download the model elsewhere and set model_id "
            "to its local directory (e.g. models/chronos-t5-small), or run `chronops model tiny` for a test model"
        ) from None
    except (ValueError, AssertionError, KeyError) as exc:
        raise ModelError(f"model_id '{model_id}': not a Chronos model ({exc})") from None
    family = _detect_family(pipeline)
    if expected_family is not None and family is not expected_family:
        raise ModelError(
            f"model_id '{model_id}' is a {family.value} model but the config says model_family="
            f"'{expected_family.value}' (fix model_family)"
        )
    sampler = _t5_sampler(pipeline, model_id) if family is Family.T5 else None
    loaded = LoadedModel(model_id, family, model_revision(resolved), pipeline, device, sampler)
    log.info("loaded %s (%s) in %.1fs", model_id, family.value, time.perf_counter() - started)
    _CACHE[key] = loaded
    return loaded
