"""Builder for tiny random-weight qwen2 GGUF models, for fast tests with real llama.cpp.

The file has the real Qwen tokenizer *shape* — byte-level BPE over the GPT-2 byte
alphabet, a few hundred code-flavoured merges, and Qwen's special tokens as CONTROL
tokens with the FIM metadata keys — but only ~1k tokens and a 64-wide, 2-layer network,
so it loads in milliseconds. With `favour`, the weights are arranged so greedy
decoding emits one chosen token forever (an "endless" model for cancellation tests).
With `quantized`, the weight matrices are stored in the quantized types real models use
(Q8_0, Q4_0, Q4_K, Q6_K), so that llama.cpp runs its quantized CPU kernels (repacked,
AVX-512, AMX) on it — what the native self-test needs.

    python -m local_models.tiny OUT.gguf [--seed N] [--favour x] [--quantized]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and gguf are imported only when a model is actually built
    import numpy as np
    import numpy.typing as npt

ARCH = "qwen2"

# Qwen's special tokens, appended after the ordinary vocab like in the real model.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Words that get their own token (with and without a leading space), chosen from what
# dominates source code; this keeps token counts realistic-ish for prompt-size tests.
# fmt: off
_WORDS: tuple[str, ...] = (
    "def", "return", "self", "class", "import", "from", "if", "else", "elif", "for",
    "while", "in", "is", "not", "and", "or", "None", "True", "False", "print", "pass",
    "with", "as", "try", "except", "raise", "yield", "lambda", "async", "await", "assert",
    "function", "const", "let", "var", "int", "str", "list", "dict", "len", "range",
    "public", "private", "static", "void", "new", "this", "null", "true", "false",
    "string", "value", "name", "data", "result", "item", "key", "index", "args",
    "kwargs", "init", "test", "get", "set", "add", "x", "y", "i", "n", "a", "b",
)
# Runs of punctuation/whitespace as the qwen2 pre-tokenizer splits them (space -> "Ġ").
_SYMBOLS: tuple[str, ...] = (
    "  ", "   ", "    ", "       ", "        ", "\n\n", "\n\n\n",
    "()", "():", "):", "):\n", "();", " =", " ==", " !=", " +=", " ->", " =>", " {", " }",
    " {\n", "};", ",", ", ", " (", "[]", " [", "])", "\"\"\"", " #", " //", "/*", "*/",
    " +", " -", " *", " /", " <", " >", " <=", " >=", "...", "::", ".\n",
)
# fmt: on


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-character alphabet used by byte-level BPE.

    Printable Latin-1 bytes stand for themselves; the rest are shifted to U+0100 onwards,
    in byte order, so no token text ever contains whitespace or control characters.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping: dict[int, str] = {b: chr(b) for b in keep}
    shift = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


def _encode_bytes(text: str, table: dict[int, str]) -> str:
    return "".join(table[b] for b in text.encode("utf-8"))


def build_vocab() -> tuple[list[str], list[str]]:
    """(tokens, merges) for the tiny byte-level BPE vocab; special tokens come last."""
    table = byte_to_unicode()
    tokens: list[str] = [table[b] for b in range(256)]
    known = set(tokens)
    merges: list[str] = []

    def add_chain(piece: str) -> None:
        # Left-to-right chain: (p[:1], p[1]) -> p[:2], (p[:2], p[2]) -> p[:3], ...
        for end in range(2, len(piece) + 1):
            left, right, merged = piece[: end - 1], piece[end - 1], piece[:end]
            if merged not in known:
                merges.append(f"{left} {right}")
                tokens.append(merged)
                known.add(merged)

    # Space-prefixed words first so their merges outrank the bare-word ones.
    pieces: Iterable[str] = [*(" " + w for w in _WORDS), *_WORDS, *_SYMBOLS]
    for piece in pieces:
        add_chain(_encode_bytes(piece, table))
    tokens.extend(SPECIAL_TOKENS)
    return tokens, merges


def _favoured_token(favour: str, tokens: list[str]) -> int:
    encoded = _encode_bytes(favour, byte_to_unicode())
    try:
        token = tokens.index(encoded)
    except ValueError:
        raise ValueError(
            f"favour={favour!r} is not a single token of the tiny vocab (try an ASCII character)"
        ) from None
    if token >= len(tokens) - len(SPECIAL_TOKENS):
        raise ValueError("favour must be ordinary text, not a special token")
    return token


def _tensors(
    rng: np.random.Generator,
    *,
    n_vocab: int,
    n_layer: int,
    n_embd: int,
    n_head: int,
    n_head_kv: int,
    n_ff: int,
    favour_id: int | None,
    special_ids: range,
    runner_up_id: int | None = None,
    runner_up_weight: float = 0.0,
) -> dict[str, npt.NDArray[np.float32]]:
    """Weights in numpy (row-major) shape order: (out, in), i.e. ggml's ne reversed."""
    import numpy as np

    n_embd_kv = (n_embd // n_head) * n_head_kv
    # "Endless" models keep every layer nearly silent so the residual stream is the embedding.
    scale = 0.002 if favour_id is not None else 0.02

    def rand(*shape: int, std: float = scale) -> npt.NDArray[np.float32]:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    token_embd = rand(n_vocab, n_embd)
    output = rand(n_vocab, n_embd)
    output_norm = np.ones(n_embd, dtype=np.float32)
    if favour_id is not None:
        # Every embedding is dominated by dimension 0; the final norm keeps only that
        # dimension; only the favoured token's output row reads it. So whatever the
        # context, the favoured token's logit is ~sqrt(n_embd) and every other logit is 0.
        token_embd[:, 0] = 1.0
        output_norm[:] = 0.0
        output_norm[0] = 1.0
        output[:, 0] = 0.0
        output[favour_id, 0] = 1.0
        if runner_up_id is not None:
            # A close second: the model is "unsure" at every step, between these two tokens.
            output[runner_up_id, 0] = runner_up_weight
    else:
        # Silence special tokens so random text does not stop after a token or two.
        output[special_ids.start : special_ids.stop, :] = 0.0

    tensors: dict[str, npt.NDArray[np.float32]] = {
        "token_embd.weight": token_embd,
        "output_norm.weight": output_norm,
        "output.weight": output,
    }
    for i in range(n_layer):
        p = f"blk.{i}."
        tensors |= {
            p + "attn_norm.weight": np.ones(n_embd, dtype=np.float32),
            p + "attn_q.weight": rand(n_embd, n_embd),
            p + "attn_q.bias": rand(n_embd),
            p + "attn_k.weight": rand(n_embd_kv, n_embd),
            p + "attn_k.bias": rand(n_embd_kv),
            p + "attn_v.weight": rand(n_embd_kv, n_embd),
            p + "attn_v.bias": rand(n_embd_kv),
            p + "attn_output.weight": rand(n_embd, n_embd),
            p + "ffn_norm.weight": np.ones(n_embd, dtype=np.float32),
            p + "ffn_gate.weight": rand(n_ff, n_embd),
            p + "ffn_up.weight": rand(n_ff, n_embd),
            p + "ffn_down.weight": rand(n_embd, n_ff),
        }
    return tensors


# Quantized mode: which type each weight matrix is stored in. Q8_0 and Q4_0 are real
# quantizations of the random weights; Q4_K and Q6_K blocks are random bits with a small
# scale (gguf-py cannot quantize K-types), which is all a kernel test needs.
QUANTIZED_TYPES: dict[str, str] = {
    "token_embd.weight": "Q8_0",
    "attn_q.weight": "Q8_0",
    "attn_k.weight": "Q8_0",
    "attn_v.weight": "Q4_0",
    "attn_output.weight": "Q4_0",
    "ffn_gate.weight": "Q4_K",
    "ffn_up.weight": "Q4_K",
    "ffn_down.weight": "Q6_K",
    "output.weight": "Q6_K",
}
K_QUANT_ROW = 256  # K-quant super-block: rows of K-quantized matrices are multiples of it


def _quantized(rng: np.random.Generator, array: npt.NDArray[np.float32], type_name: str) -> npt.NDArray[np.uint8]:
    import gguf
    import numpy as np

    qtype = gguf.GGMLQuantizationType[type_name]
    if type_name in ("Q8_0", "Q4_0"):
        return gguf.quants.quantize(array, qtype)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    rows, cols = array.shape
    blocks = rng.integers(0, 256, size=(rows, cols // block_size, type_size), dtype=np.uint8)
    # Scales chosen so that weights stay around +-0.02, like the float ones.
    if type_name == "Q4_K":  # d, dmin (f16), 12 bytes of 6-bit scales, 128 bytes of nibbles
        blocks[..., 0:2] = np.array([2e-5], dtype=np.float16).view(np.uint8)
        blocks[..., 2:4] = np.array([2e-5], dtype=np.float16).view(np.uint8)
    elif type_name == "Q6_K":  # 128 + 64 bytes of 6-bit values, 16 int8 scales, d (f16) last
        blocks[..., type_size - 2 : type_size] = np.array([5e-6], dtype=np.float16).view(np.uint8)
    else:
        raise ValueError(f"no random-block layout for {type_name}")
    return blocks.reshape(rows, -1)


def build_tiny_model(
    out: Path | str,
    *,
    seed: int = 0,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    context_length: int = 4096,
    favour: str | None = None,
    runner_up: str | None = None,
    runner_up_weight: float = 0.99,
    fim_metadata: bool = True,
    chat_template: str | None = CHAT_TEMPLATE,
    quantized: bool = False,
) -> Path:
    """Write a tiny qwen2 GGUF to `out` (atomically) and return its path. Deterministic per arguments.

    `fim_metadata=False` leaves out the tokenizer.ggml.fim_* keys (the FIM tokens stay in
    the vocab), to exercise detection for GGUFs converted without them. `chat_template`
    is written as tokenizer.chat_template (None: no template), e.g. a hostile one.
    `quantized=True` stores the weight matrices as in QUANTIZED_TYPES; it needs n_embd and
    n_ff to be multiples of 256 and cannot be combined with `favour`. `runner_up` (with
    `favour`) gives a second token `runner_up_weight` of the favoured one's logit: greedy
    decoding still emits the favoured token for ever, but at under 50 % probability, with
    the runner-up next (an "unsure" model, for alternatives).
    """
    import gguf
    import numpy as np

    if n_embd % n_head or n_head % n_head_kv or (n_embd // n_head) % 2:
        raise ValueError("need n_embd divisible by n_head, n_head by n_head_kv, and an even head size")
    if quantized and (n_embd % K_QUANT_ROW or n_ff % K_QUANT_ROW):
        raise ValueError(f"a quantized tiny model needs n_embd and n_ff to be multiples of {K_QUANT_ROW}")
    if quantized and favour is not None:
        raise ValueError("favour needs exact float weights; it cannot be combined with quantized")
    out = Path(out)
    tokens, merges = build_vocab()
    n_special = len(SPECIAL_TOKENS)
    first_special = len(tokens) - n_special
    special = {text: first_special + i for i, text in enumerate(SPECIAL_TOKENS)}
    favour_id = _favoured_token(favour, tokens) if favour is not None else None
    if runner_up is not None and favour_id is None:
        raise ValueError("runner_up needs favour")
    runner_up_id = _favoured_token(runner_up, tokens) if runner_up is not None else None
    rng = np.random.default_rng(seed)
    tensors = _tensors(
        rng,
        n_vocab=len(tokens),
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_ff=n_ff,
        favour_id=favour_id,
        special_ids=range(first_special, len(tokens)),
        runner_up_id=runner_up_id,
        runner_up_weight=runner_up_weight,
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(tmp, ARCH)
        writer.add_name(
            "ninetyten tiny qwen2"
            + (f" (favour {favour!r})" if favour is not None else "")
            + (f" (runner-up {runner_up!r})" if runner_up is not None else "")
            + (" (quantized)" if quantized else "")
        )
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M if quantized else gguf.LlamaFileType.ALL_F32)
        writer.add_context_length(context_length)
        writer.add_embedding_length(n_embd)
        writer.add_block_count(n_layer)
        writer.add_feed_forward_length(n_ff)
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_head_kv)
        writer.add_layer_norm_rms_eps(1e-6)
        writer.add_rope_freq_base(1_000_000.0)

        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("qwen2")
        writer.add_token_list(tokens)
        writer.add_token_types([gguf.TokenType.NORMAL] * first_special + [gguf.TokenType.CONTROL] * n_special)
        writer.add_token_merges(merges)
        writer.add_bos_token_id(special["<|endoftext|>"])
        writer.add_eos_token_id(special["<|endoftext|>"])
        writer.add_pad_token_id(special["<|endoftext|>"])
        writer.add_add_bos_token(False)  # Qwen never prepends BOS
        if fim_metadata:
            K = gguf.Keys.Tokenizer
            writer.add_uint32(K.FIM_PRE_ID, special["<|fim_prefix|>"])
            writer.add_uint32(K.FIM_SUF_ID, special["<|fim_suffix|>"])
            writer.add_uint32(K.FIM_MID_ID, special["<|fim_middle|>"])
            writer.add_uint32(K.FIM_PAD_ID, special["<|fim_pad|>"])
            writer.add_uint32(K.FIM_REP_ID, special["<|repo_name|>"])
            writer.add_uint32(K.FIM_SEP_ID, special["<|file_sep|>"])
        if chat_template is not None:
            writer.add_chat_template(chat_template)

        for name, array in tensors.items():
            type_name = QUANTIZED_TYPES.get(name.split(".", 2)[-1] if name.startswith("blk.") else name)
            if quantized and type_name is not None:
                writer.add_tensor(
                    name, _quantized(rng, array, type_name), raw_dtype=gguf.GGMLQuantizationType[type_name]
                )
            else:
                writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a model file is not a secret
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_models.tiny", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the .gguf")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--favour", default=None, help="make greedy decoding repeat this token forever (e.g. x)")
    parser.add_argument("--runner-up", default=None, help="with --favour: a close second token (an unsure model)")
    parser.add_argument("--context-length", type=int, default=4096)
    parser.add_argument(
        "--quantized", action="store_true", help="store the weights as Q8_0/Q4_0/Q4_K/Q6_K (256-wide, for kernel tests)"
    )
    args = parser.parse_args(argv)
    n_embd, n_ff = (256, 512) if args.quantized else (64, 128)
    try:
        path = build_tiny_model(
            args.out,
            seed=args.seed,
            favour=args.favour,
            runner_up=args.runner_up,
            context_length=args.context_length,
            quantized=args.quantized,
            n_embd=n_embd,
            n_ff=n_ff,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
