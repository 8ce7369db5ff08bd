"""Python API predictions per second, for one or more source trees side by side in one run.

    python benchmarks/api_rate.py src                   # this checkout
    git worktree add /tmp/old REV && python benchmarks/api_rate.py /tmp/old/src src   # before / after

Each tree runs in its own interpreter: 4 model/device pairs x batch 1, 8, 64, 128 generated tokens, best of 3.
"""

import subprocess
import sys

LOOP = """
import sys, time
sys.path.insert(0, sys.argv[1])
import llm_roofline as l
cases = [("llama-3.1-70b", "h100"), ("qwen3-30b-a3b", "4090"), ("gemma-3-27b", "m2-ultra"), ("deepseek-v3", "h200")]
for m, h in cases:
    l.predict(m, h)
best = 0.0
for _ in range(3):
    t, n = time.perf_counter(), 0
    for m, h in cases:
        for b in (1, 8, 64):
            l.predict(m, h, batch=b, gen=128)
            n += 1
    best = max(best, n / (time.perf_counter() - t))
print(f"{sys.argv[1]}: {best:.0f} predictions/s")
"""

if __name__ == "__main__":
    for tree in sys.argv[1:] or ["src"]:
        subprocess.run([sys.executable, "-c", LOOP, tree], check=True)
