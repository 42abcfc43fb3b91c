#!/usr/bin/env bash
# Make TorchSig 2.2 importable next to CPU-only torch 2.13.
#
# PyPI's only torchaudio for this torch line (2.11.0) is a CUDA build: `import torchsig` fails
# with "libc10_cuda.so: cannot open shared object file" while torchaudio loads its compiled
# extension. TorchSig only uses torchaudio.transforms.Spectrogram, which is pure torch.stft.
# torchaudio skips its extension when the library files are absent, so this script moves them
# aside (into torchaudio/lib/disabled/), after which torchaudio imports as pure Python.
#
# Usage: scripts/torchsig_workaround.sh [VENV]   (default .venv-torchsig)
set -euo pipefail
venv="${1:-.venv-torchsig}"
lib=$("$venv/bin/python" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("torchaudio")
print(pathlib.Path(spec.origin).parent / "lib")
PY
)
mkdir -p "$lib/disabled"
shopt -s nullglob
for so in "$lib"/*.so; do mv "$so" "$lib/disabled/"; done
"$venv/bin/python" -c "import torchsig; print('torchsig', torchsig.__version__, 'imports')"
