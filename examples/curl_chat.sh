#!/usr/bin/env bash
# Call an sglang-dflash server's OpenAI-compatible chat endpoint with curl: once whole, once
# streamed (server-sent events). Usage:
#
#   examples/curl_chat.sh                      # server on localhost:30000, serving Qwen/Qwen3-8B
#   BASE_URL=http://gpu-box:30000/v1 MODEL=google/gemma-4-31B-it examples/curl_chat.sh
#
# MODEL is the served model name: the target's path unless the server was started with
# --served-model-name. GET $BASE_URL/models lists it.
set -euo pipefail

BASE_URL=${BASE_URL:-http://localhost:30000/v1}
MODEL=${MODEL:-Qwen/Qwen3-8B}
PROMPT=${PROMPT:-Write a quicksort in Python.}

# JSON-quote the prompt without needing jq.
prompt_json=$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$PROMPT")

body() {  # $1: true or false for "stream"
  cat <<JSON
{
  "model": "$MODEL",
  "messages": [{"role": "user", "content": $prompt_json}],
  "max_tokens": 4096,
  "temperature": 0.0,
  "chat_template_kwargs": {"enable_thinking": true},
  "stream": $1
}
JSON
}

echo "== non-streaming =="
curl -sS --fail-with-body "$BASE_URL/chat/completions" \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer ${API_KEY:-EMPTY}" \
  -d "$(body false)"
echo

echo "== streaming =="
# -N: print each event as it arrives. Every event is one "data: {...}" line; the last is "data: [DONE]".
curl -sS -N --fail-with-body "$BASE_URL/chat/completions" \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer ${API_KEY:-EMPTY}" \
  -d "$(body true)"
echo
