"""Compare probe.py outputs: host (x86) .npz against emulated-arm64 .npz files.

usage: python compare.py HOST.npz EMU.npz [EMU.npz ...]   (exit 1 if any argmax or generated text differs)
"""
import json, sys
import numpy as np

host = np.load(sys.argv[1])
bad = 0
for p in sys.argv[2:]:
    e = np.load(p)
    d = np.abs(host["logits"] - e["logits"])
    same_argmax = bool((host["logits"].argmax(-1) == e["logits"].argmax(-1)).all())
    same_gen = str(host["gen"]) == str(e["gen"])
    t = json.loads(str(e["timing"]))
    bad += not (same_argmax and same_gen)
    print(f"{p.rsplit('/', 1)[-1]:28s} max|dlogit|={d.max():.3g} mean={d.mean():.2g} argmax_same={same_argmax} "
          f"gen_same={same_gen} gen={str(e['gen'])!r:.40} load={t['load_s']:.2f}s score={t['score_s']:.2f}s "
          f"gen8={t['generate_s']:.2f}s")
sys.exit(1 if bad else 0)
