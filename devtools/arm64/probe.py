"""Score + greedy-generate one slmkit artifact; save logits/tokens to an .npz (run on host or under qemu).

usage: python probe.py ARTIFACT OUT.npz [TEXT] [PROMPT]
"""
import json, platform, sys, time

import numpy as np

t0 = time.perf_counter()
import slmkit  # noqa: E402

art, out = sys.argv[1], sys.argv[2]
text = sys.argv[3] if len(sys.argv) > 3 else "a cozy cabin wallpaper"
prompt = sys.argv[4] if len(sys.argv) > 4 else "a cozy cabin"
t1 = time.perf_counter()
rt = slmkit.load(art, threads=1)
t2 = time.perf_counter()
logits = rt.score(text)
t3 = time.perf_counter()
gen = rt.generate(prompt, max_new_tokens=8)
t4 = time.perf_counter()
gen_ids = rt.tokenizer.encode(gen) if hasattr(rt.tokenizer, "encode") else []
timing = dict(import_s=t1 - t0, load_s=t2 - t1, score_s=t3 - t2, generate_s=t4 - t3, total_s=t4 - t0)
np.savez(out, logits=logits, gen=np.array(gen), gen_ids=np.array(gen_ids, dtype=np.int64),
         machine=np.array(platform.machine()), timing=np.array(json.dumps(timing)))
print(platform.machine(), art.rsplit("/", 1)[-1], logits.shape, logits[-1][:5], repr(gen))
print("timing", json.dumps({k: round(v, 2) for k, v in timing.items()}))
