"""`models recommend`: a pure function of a machine description, checked on described machines."""

from __future__ import annotations

import itertools
import os

import pytest

from local_models import ModelError
from local_models.catalog import load_catalog
from local_models.machine import GIB, Machine, detect_machine, parse_machine
from local_models.recommend import Budget, memory_need, recommend, speeds, summary_lines

# The documented choices (README, "Which model for which machine"): machine -> (completion, chat),
# as `ninetyten models pull` specs.
DOCUMENTED = [
    ("ram=2G,cores=1", "gemma-3-270m", "gemma-3-270m"),
    ("ram=4G,cores=2", "qwen2.5-coder-0.5b:q4_k_m", "qwen2.5-coder-0.5b-instruct"),
    ("ram=8G,cores=4", "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct"),
    ("ram=16G,cores=8,gpu_mem=0", "qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct"),
    ("ram=16G,cores=8,gpu_mem=11G,shared=1", "qwen2.5-coder-1.5b", "qwen2.5-coder-7b-instruct:q4_k_m"),
    ("ram=32G,cores=8,gpu_mem=8G", "qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct"),
    ("ram=32G,cores=12,gpu_mem=12G", "qwen2.5-coder-7b:q4_k_m", "qwen2.5-coder-1.5b-instruct"),
    ("ram=64G,cores=16,gpu_mem=24G", "qwen2.5-coder-14b:q4_k_m", "qwen2.5-coder-14b-instruct"),
    ("ram=128G,cores=32,gpu_mem=80G", "qwen3-coder-30b-a3b", "qwen2.5-coder-32b-instruct"),
]


def spec(choice) -> str:  # type: ignore[no-untyped-def]
    return choice.pull_spec or choice.model_id


@pytest.mark.parametrize(("machine", "completion", "chat"), DOCUMENTED)
def test_documented_choices(machine: str, completion: str, chat: str) -> None:
    rec = recommend(parse_machine(machine))
    assert (spec(rec.completion), spec(rec.chat)) == (completion, chat)
    budget = Budget()
    if rec.completion.pull_spec:
        assert rec.completion.latency_ms <= budget.completion_ms
        assert rec.command is not None and rec.command.startswith("ninetyten models pull ")
        assert completion in rec.command.split()
    if rec.chat.pull_spec:
        assert rec.chat.tokens_per_s >= budget.chat_min_tokens_per_s
        assert chat in (rec.command or "").split()


def test_nothing_fits_keeps_the_built_in_model() -> None:
    rec = recommend(parse_machine("ram=2G,cores=1"))
    assert rec.completion.model_id == rec.chat.model_id == "gemma-3-270m"
    assert rec.completion.pull_spec is None and rec.command is None
    assert "keep the built-in model" in rec.completion.why
    text = "\n".join(summary_lines(rec))
    assert "pull them" not in text and "keep the built-in model" in text


def test_explains_why_and_why_not_bigger() -> None:
    rec = recommend(parse_machine("ram=16G,cores=8,gpu_mem=0"))
    assert "on the CPU (8 threads)" in rec.completion.why and "tokens/s" in rec.completion.why
    nearest = rec.completion_rejected[0]
    assert nearest.model_id == "qwen2.5-coder-7b" and nearest.quant == "q4_k_m"
    text = "\n".join(summary_lines(rec))
    assert "not qwen2.5-coder-7b (Q4_K_M)" in text
    assert "pull them   ninetyten models pull qwen2.5-coder-1.5b qwen2.5-coder-1.5b-instruct" in text


def test_never_recommends_a_non_commercial_licence() -> None:
    catalog = load_catalog()
    for ram, cores, gpu in itertools.product((2, 4, 8, 16, 32, 64, 128), (1, 2, 4, 8, 16), (0, 4, 8, 12, 16, 24, 48)):
        rec = recommend(Machine(ram_bytes=ram * GIB, cores=cores, gpu_mem_bytes=gpu * GIB))
        for choice in (rec.completion, rec.chat):
            assert catalog[choice.model_id].permissive or choice.model_id == "gemma-3-270m"


def test_a_bigger_machine_never_gets_a_worse_completion_model() -> None:
    catalog = load_catalog()
    grid = [(ram, cores, gpu) for ram in (4, 8, 16, 32, 64) for cores in (2, 4, 8) for gpu in (0, 8, 24)]
    rank = {}
    for ram, cores, gpu in grid:
        rec = recommend(Machine(ram_bytes=ram * GIB, cores=cores, gpu_mem_bytes=gpu * GIB))
        rank[(ram, cores, gpu)] = catalog[rec.completion.model_id].rank
    for (ram, cores, gpu), value in rank.items():
        for bigger in ((ram * 2, cores, gpu), (ram, cores * 2, gpu)):
            if bigger in rank:
                assert rank[bigger] >= value, (ram, cores, gpu, bigger)


def test_models_fit_together() -> None:
    budget = Budget()
    for text, _completion, _chat in DOCUMENTED:
        machine = parse_machine(text)
        rec = recommend(machine)
        on_gpu = sum(c.memory_bytes for c in (rec.completion, rec.chat) if c.placement == "gpu")
        on_cpu = sum(c.memory_bytes for c in (rec.completion, rec.chat) if c.placement == "cpu")
        assert on_gpu <= machine.gpu_mem_bytes * budget.gpu_fraction
        ram_used = on_cpu + (on_gpu if machine.gpu_shared_memory else 0)
        assert ram_used <= machine.ram_bytes * budget.ram_fraction


def test_budget_is_a_parameter() -> None:
    machine = parse_machine("ram=32G,cores=8")
    assert recommend(machine).completion.model_id == "qwen2.5-coder-1.5b"
    patient = recommend(machine, budget=Budget(completion_ms=4000))
    assert load_catalog()[patient.completion.model_id].rank > load_catalog()["qwen2.5-coder-1.5b"].rank


def test_one_model_for_both_when_it_has_both_roles() -> None:
    """Qwen3-Coder 30B-A3B does FIM and chat: when it is the completion model, chat shares it."""
    rec = recommend(parse_machine("ram=128G,cores=32,gpu_mem=80G,gpu_bw=150G"))
    assert rec.completion.model_id == rec.chat.model_id == "qwen3-coder-30b-a3b"
    assert rec.chat.memory_bytes == 0 and "same loaded model" in rec.chat.why
    assert rec.command == "ninetyten models pull qwen3-coder-30b-a3b"


def test_speed_model() -> None:
    catalog = load_catalog()
    entry = catalog["qwen2.5-coder-1.5b"]
    q8 = entry.file_for("q8_0")
    assert q8 is not None
    cpu8 = parse_machine("ram=16G,cores=8")
    decode8, prefill8 = speeds(entry, q8, cpu8, "cpu")
    decode2, prefill2 = speeds(entry, q8, parse_machine("ram=16G,cores=2"), "cpu")
    assert decode8 > decode2 and prefill8 > prefill2 * 3
    assert speeds(entry, q8, parse_machine("ram=16G,cores=8,bw=100G"), "cpu")[0] > decode8
    gpu = speeds(entry, q8, parse_machine("ram=16G,cores=8,gpu_mem=8G"), "gpu")
    assert gpu[0] > decode8 * 3
    # Mixture of experts: only the active parameters are read per token.
    moe = catalog["qwen3-coder-30b-a3b"]
    moe_q4 = moe.file_for("q4_k_m")
    assert moe_q4 is not None
    dense = catalog["qwen2.5-coder-32b"].file_for("q4_k_m")
    assert dense is not None
    assert speeds(moe, moe_q4, cpu8, "cpu")[0] > 5 * speeds(catalog["qwen2.5-coder-32b"], dense, cpu8, "cpu")[0]
    # Memory: weights + KV cache + runtime, growing with the context.
    assert memory_need(entry, q8, 8192) - memory_need(entry, q8, 4096) == 4096 * entry.arch.kv_bytes_per_token()


def test_parse_machine() -> None:
    m = parse_machine("ram=16G, cores=8, gpu_mem=8G, gpu=RTX 4060, bw=60G, gpu_bw=272G")
    assert (m.ram_bytes, m.cores, m.gpu_mem_bytes, m.gpu_name) == (16 * GIB, 8, 8 * GIB, "RTX 4060")
    assert (m.mem_bandwidth, m.gpu_bandwidth, m.source) == (60e9, 272e9, "described")
    assert parse_machine("ram=512M,cores=1").ram_bytes == 512 * 1024**2
    assert parse_machine("ram=16,cores=4,vram=6GiB").gpu_mem_bytes == 6 * GIB
    assert parse_machine("ram=16G,cores=8,gpu_mem=11G,unified=yes").gpu_shared_memory
    for bad, words in [
        ("ram=16G", "at least ram= and cores="),
        ("ram=lots,cores=2", "not a size"),
        ("ram=16G,cores=8,colour=red", "unknown key"),
        ("ram=16G;cores=8", "at least ram= and cores="),
        ("ram=16G,cores", "KEY=VALUE"),
        ("ram=16G,cores=0", "positive"),
    ]:
        with pytest.raises(ModelError, match=words):
            parse_machine(bad)


def test_detect_machine_degrades_gracefully() -> None:
    import llama_cpp

    machine = detect_machine()
    assert machine.source == "detected" and machine.ram_bytes > 0
    if hasattr(os, "sched_getaffinity"):
        assert machine.cores == len(os.sched_getaffinity(0))
    if not llama_cpp.llama_supports_gpu_offload():
        assert machine.gpu_mem_bytes == 0 and any("CPU only" in note for note in machine.notes)
    # Whatever was detected, a recommendation comes out.
    assert recommend(machine).completion.model_id
