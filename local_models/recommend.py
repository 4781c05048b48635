"""`ninetyten models recommend`: the best models a machine runs within the latency budgets.

A pure function of a machine description (see machine.py) and the catalog, so it can be
asked about any machine and tested on many. The estimates are deliberately simple and
printed with every answer:

- generating a token reads every active weight once, so it is bounded by memory bandwidth
  (weights bytes / bandwidth) and by arithmetic (2 FLOPs per active parameter);
- reading the prompt is arithmetic-bound and batched, hence several times faster per token;
- a model runs on the GPU only if all of it fits (weights, KV cache, compute buffers).

The completion model must answer a keystroke — re-reading the prompt tokens the keystroke
invalidated and writing a one-line suggestion — within `Budget.completion_ms`. The chat model
must write faster than one reads and read a diff chunk within `Budget.chat_prompt_s`. Both
must fit, together, in their share of RAM and GPU memory. Among what fits, the highest
`rank` wins (then the larger quantisation); models whose licence is not permissive are
only pulled by name, never recommended.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, computed_field

from local_models.catalog import EMBEDDED_MODEL_ID, CatalogEntry, ModelFile, Role, load_catalog
from local_models.machine import Machine

# Throughput model. CPU numbers are per thread the server uses (at most THREADS_MAX).
CPU_BW_PER_THREAD = 6e9  # bytes/s of RAM bandwidth one thread can draw
CPU_BW_MAX = 50e9  # a dual-channel desktop or laptop; pass bw= for more
CPU_DECODE_FLOPS_PER_THREAD = 20e9
CPU_PREFILL_FLOPS_PER_THREAD = 75e9
THREADS_MAX = 8  # the server's default: all cores, at most 8
GPU_BW = {"dedicated": 300e9, "shared": 100e9}
GPU_PREFILL_FLOPS = {"dedicated": 20e12, "shared": 4e12}
FIXED_OVERHEAD_MS = 30.0  # tokenising, sampling, post-processing, the LSP round trip
RUNTIME_BYTES = 200 * 1024**2  # compute buffers and the runtime, on top of weights and KV cache
QUANT_ORDER = {"q8_0": 2, "q4_k_m": 1}  # among files of one model: higher is better quality

Placement = Literal["gpu", "cpu"]


@dataclass(frozen=True)
class Budget:
    completion_ms: float = 1000.0  # a one-line suggestion after a keystroke
    prompt_delta_tokens: int = 64  # prompt tokens a keystroke invalidates: the cursor line and what follows
    suggestion_tokens: int = 16  # a one-line suggestion
    completion_ctx: int = 4096  # the server's n_ctx
    chat_min_tokens_per_s: float = 10.0  # write faster than one reads
    chat_prompt_tokens: int = 2000  # a diff chunk and the instructions
    chat_prompt_s: float = 15.0
    chat_ctx: int = 8192
    ram_fraction: float = 0.5  # models share of RAM: the editor, browser and system keep the rest
    gpu_fraction: float = 0.85  # of GPU memory: the display and the driver keep the rest


class Choice(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_id: str
    name: str
    quant: str
    repo: str | None
    file: str
    download_bytes: int
    memory_bytes: int
    placement: Placement
    tokens_per_s: float
    prompt_tokens_per_s: float
    latency_ms: float  # completion: one suggestion; chat: reading the prompt
    license: str
    pull_spec: str | None  # what `ninetyten models pull` takes; None for the embedded model
    why: str


class Rejected(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_id: str
    quant: str
    why: str


class Recommendation(BaseModel):
    model_config = ConfigDict(frozen=True)

    machine: Machine
    budget: dict[str, float]
    completion: Choice
    chat: Choice
    # The best candidates that did not make it, and why: "why not something bigger?"
    completion_rejected: list[Rejected]
    chat_rejected: list[Rejected]

    @property
    def pull_specs(self) -> list[str]:
        """What to pull for the two choices, once each (chat may share the completion model)."""
        return list(dict.fromkeys(c.pull_spec for c in (self.completion, self.chat) if c.pull_spec))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def command(self) -> str | None:
        specs = self.pull_specs
        return f"ninetyten models pull {' '.join(specs)}" if specs else None


@dataclass(frozen=True)
class _Pools:
    ram: float
    gpu: float
    shared: bool  # GPU memory is RAM

    def place(self, need: float, share: float) -> Placement | None:
        """Where a model needing `need` bytes runs, given at most `share` of each pool; None: nowhere."""
        if self.gpu > 0 and need <= self.gpu * share and (not self.shared or need <= self.ram * share):
            return "gpu"
        return "cpu" if need <= self.ram * share else None

    def minus(self, need: float, placement: Placement) -> _Pools:
        gpu = self.gpu - need if placement == "gpu" else self.gpu
        ram = self.ram - need if placement == "cpu" or self.shared else self.ram
        return _Pools(ram=ram, gpu=gpu, shared=self.shared)


def memory_need(entry: CatalogEntry, model_file: ModelFile, n_ctx: int) -> int:
    """Weights + KV cache at `n_ctx` + runtime, in bytes (an estimate, printed as such)."""
    weights = model_file.size
    return int(weights + entry.arch.kv_bytes_per_token() * n_ctx + RUNTIME_BYTES + 0.05 * weights)


def _threads(machine: Machine) -> int:
    return min(machine.cores, THREADS_MAX)


def speeds(entry: CatalogEntry, model_file: ModelFile, machine: Machine, placement: Placement) -> tuple[float, float]:
    """(generated tokens/s, prompt tokens/s) under the throughput model above."""
    active_bytes = model_file.size * entry.active_b / entry.params_b
    flops_per_token = 2 * entry.active_b * 1e9
    if placement == "gpu":
        kind = "shared" if machine.gpu_shared_memory else "dedicated"
        bandwidth = machine.gpu_bandwidth or GPU_BW[kind]
        return bandwidth / active_bytes, GPU_PREFILL_FLOPS[kind] / flops_per_token
    threads = _threads(machine)
    bandwidth = machine.mem_bandwidth or min(CPU_BW_PER_THREAD * threads, CPU_BW_MAX)
    decode = min(bandwidth / active_bytes, threads * CPU_DECODE_FLOPS_PER_THREAD / flops_per_token)
    return decode, threads * CPU_PREFILL_FLOPS_PER_THREAD / flops_per_token


def _candidates(catalog: dict[str, CatalogEntry], role: Role) -> list[tuple[CatalogEntry, ModelFile]]:
    pairs = [
        (e, f)
        for e in catalog.values()
        if e.has_role(role) and e.permissive and e.id != EMBEDDED_MODEL_ID
        for f in e.files
        if f.repo is not None
    ]
    return sorted(pairs, key=lambda p: (p[0].rank, QUANT_ORDER.get(p[1].quant, 0)), reverse=True)


def _pull_spec(entry: CatalogEntry, model_file: ModelFile) -> str:
    return entry.id if model_file is entry.default_file() else f"{entry.id}:{model_file.quant}"


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _choice(
    entry: CatalogEntry,
    model_file: ModelFile,
    need: int,
    placement: Placement,
    speed: tuple[float, float],
    latency_ms: float,
    why: str,
) -> Choice:
    embedded = entry.id == EMBEDDED_MODEL_ID
    return Choice(
        model_id=entry.id,
        name=entry.name,
        quant=model_file.quant,
        repo=model_file.repo,
        file=model_file.file,
        download_bytes=0 if embedded else model_file.size,
        memory_bytes=need,
        placement=placement,
        tokens_per_s=round(speed[0], 1),
        prompt_tokens_per_s=round(speed[1], 1),
        latency_ms=round(latency_ms),
        license=entry.license,
        pull_spec=None if embedded else _pull_spec(entry, model_file),
        why=why,
    )


def _where(placement: Placement, machine: Machine) -> str:
    if placement == "cpu":
        return f"on the CPU ({_threads(machine)} threads)"
    return "on the GPU" + (f" ({machine.gpu_name})" if machine.gpu_name else "")


def recommend(
    machine: Machine, catalog: dict[str, CatalogEntry] | None = None, budget: Budget | None = None
) -> Recommendation:
    catalog = catalog if catalog is not None else load_catalog()
    budget = budget or Budget()
    pools = _Pools(
        ram=machine.ram_bytes * budget.ram_fraction,
        gpu=machine.gpu_mem_bytes * budget.gpu_fraction if machine.has_gpu else 0.0,
        shared=machine.gpu_shared_memory,
    )

    # Completion: at most half of each pool, so that a chat model fits beside it.
    completion: Choice | None = None
    completion_rejected: list[Rejected] = []
    completion_pools = pools
    for entry, model_file in _candidates(catalog, Role.FIM):
        need = memory_need(entry, model_file, budget.completion_ctx)
        placement = pools.place(need, 0.5)
        if placement is None:
            completion_rejected.append(
                Rejected(
                    model_id=entry.id,
                    quant=model_file.quant,
                    why=f"needs ~{_gb(need)} of memory; its share here is {_gb(max(pools.gpu, pools.ram) * 0.5)}",
                )
            )
            continue
        speed = speeds(entry, model_file, machine, placement)
        latency = (
            1000 * (budget.prompt_delta_tokens / speed[1] + budget.suggestion_tokens / speed[0]) + FIXED_OVERHEAD_MS
        )
        if latency > budget.completion_ms:
            completion_rejected.append(
                Rejected(
                    model_id=entry.id,
                    quant=model_file.quant,
                    why=f"~{latency:.0f} ms per suggestion {_where(placement, machine)}, "
                    f"over the {budget.completion_ms:.0f} ms budget",
                )
            )
            continue
        completion = _choice(
            entry,
            model_file,
            need,
            placement,
            speed,
            latency,
            f"the best FIM model that answers a keystroke in ~{latency:.0f} ms "
            f"(budget {budget.completion_ms:.0f} ms) {_where(placement, machine)}: "
            f"{speed[0]:.0f} tokens/s generated, {speed[1]:.0f} tokens/s of prompt, "
            f"~{_gb(need)} of memory",
        )
        completion_pools = pools.minus(need, placement)
        break
    if completion is None:
        entry = catalog[EMBEDDED_MODEL_ID]
        model_file = entry.default_file()
        speed = speeds(entry, model_file, machine, "cpu")
        latency = (
            1000 * (budget.prompt_delta_tokens / speed[1] + budget.suggestion_tokens / speed[0]) + FIXED_OVERHEAD_MS
        )
        completion = _choice(
            entry,
            model_file,
            memory_need(entry, model_file, budget.completion_ctx),
            "cpu",
            speed,
            latency,
            "no catalog FIM model answers a keystroke within the budget on this machine: keep the built-in model",
        )

    chat: Choice | None = None
    chat_rejected: list[Rejected] = []
    for entry, model_file in _candidates(catalog, Role.CHAT):
        shares_completion = entry.id == completion.model_id and model_file.quant == completion.quant
        need = memory_need(entry, model_file, budget.chat_ctx)
        if shares_completion:
            placement = completion.placement
        else:
            placement = completion_pools.place(need, 1.0)
        if placement is None:
            chat_rejected.append(
                Rejected(
                    model_id=entry.id,
                    quant=model_file.quant,
                    why=f"needs ~{_gb(need)} of memory; "
                    f"{_gb(max(completion_pools.gpu, completion_pools.ram))} is left "
                    "beside the completion model",
                )
            )
            continue
        speed = speeds(entry, model_file, machine, placement)
        prompt_s = budget.chat_prompt_tokens / speed[1]
        if speed[0] < budget.chat_min_tokens_per_s or prompt_s > budget.chat_prompt_s:
            chat_rejected.append(
                Rejected(
                    model_id=entry.id,
                    quant=model_file.quant,
                    why=f"{speed[0]:.0f} tokens/s and {prompt_s:.0f} s to read a diff "
                    f"{_where(placement, machine)} (needs >= "
                    f"{budget.chat_min_tokens_per_s:.0f} tokens/s and <= "
                    f"{budget.chat_prompt_s:.0f} s)",
                )
            )
            continue
        why = (
            f"the best chat model that writes {speed[0]:.0f} tokens/s and reads a "
            f"{budget.chat_prompt_tokens}-token diff in ~{prompt_s:.2g} s {_where(placement, machine)}"
        )
        why += "; the same loaded model as completion" if shares_completion else f", ~{_gb(need)} of memory"
        chat = _choice(entry, model_file, 0 if shares_completion else need, placement, speed, prompt_s * 1000, why)
        break
    if chat is None:
        entry = catalog[EMBEDDED_MODEL_ID]
        model_file = entry.default_file()
        speed = speeds(entry, model_file, machine, "cpu")
        shared = completion.model_id == EMBEDDED_MODEL_ID
        chat = _choice(
            entry,
            model_file,
            0 if shared else memory_need(entry, model_file, budget.chat_ctx),
            "cpu",
            speed,
            1000 * budget.chat_prompt_tokens / speed[1],
            "no catalog chat model is fast enough here: keep the built-in model"
            + ("; the same loaded model as completion" if shared else ""),
        )

    return Recommendation(
        machine=machine,
        budget={k: float(v) for k, v in asdict(budget).items()},
        completion=completion,
        chat=chat,
        completion_rejected=_above(completion_rejected, catalog, completion),
        chat_rejected=_above(chat_rejected, catalog, chat),
    )


def _above(rejected: list[Rejected], catalog: dict[str, CatalogEntry], chosen: Choice) -> list[Rejected]:
    """The rejected candidates that rank above the choice, nearest first, one per model:
    the answer to "why not something bigger?"."""
    chosen_rank = catalog[chosen.model_id].rank
    by_model: dict[str, Rejected] = {}
    for item in rejected:  # best quant first within a model: the last seen (smallest) is the one to explain
        if catalog[item.model_id].rank < chosen_rank:
            continue
        if item.model_id == chosen.model_id and QUANT_ORDER.get(item.quant, 0) <= QUANT_ORDER.get(chosen.quant, 0):
            continue
        by_model[item.model_id] = item
    return sorted(by_model.values(), key=lambda item: catalog[item.model_id].rank)


def summary_lines(rec: Recommendation) -> list[str]:
    """The human-readable answer (used by the CLI and by `doctor`)."""
    lines = [f"machine     {rec.machine.summary()} ({rec.machine.source})"]
    lines += [f"  note: {note}" for note in rec.machine.notes]
    for label, choice, rejected in (
        ("completion", rec.completion, rec.completion_rejected),
        ("chat", rec.chat, rec.chat_rejected),
    ):
        quant = choice.quant.upper()
        size = f", {_gb(choice.download_bytes)} download" if choice.download_bytes else ""
        lines.append(f"{label:<11} {choice.model_id} ({quant}{size})")
        lines.append(f"  why: {choice.why}")
        for item in rejected[:2]:
            lines.append(f"  not {item.model_id} ({item.quant.upper()}): {item.why}")
    if rec.command:
        lines.append(f"pull them   {rec.command}")
        lines.append(
            f"then        ninetyten serve --model {rec.completion.model_id}" if rec.completion.pull_spec else ""
        )
    return [line for line in lines if line]


__all__ = ["Budget", "Choice", "Recommendation", "Rejected", "memory_need", "recommend", "speeds", "summary_lines"]
