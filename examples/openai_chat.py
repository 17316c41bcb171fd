"""Chat with an sglang-dflash server through the OpenAI Python client, once whole and once streamed.

Start a server first, for example (GPU machine; docker/README.md has the container version):

    python -m sglang.launch_server --model-path Qwen/Qwen3-8B \
        --speculative-algorithm DFLASH --speculative-draft-model-path z-lab/Qwen3-8B-DFlash-b16 \
        --tp-size 1 --dtype bfloat16 --attention-backend fa3 --mem-fraction-static 0.75 \
        --trust-remote-code

then:

    pip install openai
    python examples/openai_chat.py                       # asks the server which model it serves
    python examples/openai_chat.py --prompt "Explain speculative decoding in two sentences." \
        --no-thinking --max-tokens 256

Speculative decoding changes speed, not output: with temperature 0 each token kept is the one the
target model picks itself (bf16 rounding aside). ``chat_template_kwargs`` reach the model's chat template; Qwen3 and
Gemma 4 read ``enable_thinking`` there, as the z-lab model cards do.
"""

from __future__ import annotations

import argparse
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--base-url",
        default="http://localhost:30000/v1",
        help="server address including /v1 (default: %(default)s)",
    )
    ap.add_argument(
        "--api-key",
        default="EMPTY",
        help="sent as the bearer token; only checked if the server has --api-key",
    )
    ap.add_argument("--model", help="served model name (default: the first one /v1/models lists)")
    ap.add_argument("--prompt", default="Write a quicksort in Python.")
    ap.add_argument("--max-tokens", type=int, default=4096)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument(
        "--no-thinking", action="store_true", help="send enable_thinking=False to the chat template"
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from openai import OpenAI  # imported here so --help works without the package

    client = OpenAI(base_url=args.base_url, api_key=args.api_key)
    model = args.model or client.models.list().data[0].id
    request = dict(
        model=model,
        messages=[{"role": "user", "content": args.prompt}],
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        extra_body={"chat_template_kwargs": {"enable_thinking": not args.no_thinking}},
    )

    # 1. One response with the whole answer.
    start = time.perf_counter()
    response = client.chat.completions.create(**request)
    seconds = time.perf_counter() - start
    print(f"== {model}, non-streaming ==")
    print(response.choices[0].message.content)
    if response.usage is not None:
        tokens = response.usage.completion_tokens
        print(f"-- {tokens} tokens in {seconds:.2f} s ({tokens / seconds:.1f} tok/s)")

    # 2. The same request, streamed: text arrives in pieces as blocks are verified.
    print(f"\n== {model}, streaming ==")
    for chunk in client.chat.completions.create(**request, stream=True):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        # With --reasoning-parser the thinking arrives separately as reasoning_content.
        piece = getattr(delta, "reasoning_content", None) or delta.content
        if piece:
            print(piece, end="", flush=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
