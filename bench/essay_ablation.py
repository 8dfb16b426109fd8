"""Essay-model ablation over a shipped ONNX sentence model's embeddings (CPU, no checkpoint).

    python bench/essay_ablation.py --pack .pack --onnx engines/zh/sentence_fp32.onnx \
        [--save .runs/essay/essay.pt] [--essay_discourse false] [other engines.train flags]

Embeds the pack's essay sentences with the ONNX file (cached next to the pack), trains the
essay model exactly as `python -m engines.train` does (5-fold ensemble, ordinal cut points)
and prints its out-of-fold and valid metrics as JSON. `--save` writes the essay model as a
checkpoint that `python -m engines.release --essay-only` ships on top of that sentence model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.train import Pack, parse_args, train_essay

PREFIXES = ("oe_train", "cedcc_train", "oe_valid", "cedcc_valid")


def embed_all(pack: Pack, onnx_file: Path) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    cache = pack.folder / f"essay_emb_{onnx_file.stem}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    out = {}
    for p in PREFIXES:
        ids_all = pack.a[f"{p}_sent_ids"].astype(np.int64)
        order = np.argsort((ids_all != 0).sum(1))  # batch by length
        emb = np.zeros((len(ids_all), 256), np.float32)
        for s in range(0, len(order), 64):
            rows = order[s : s + 64]
            ids = ids_all[rows]
            T = max(int((ids != 0).sum(1).max()), 1)
            ids = ids[:, :T]
            feeds = {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64)}
            res = dict(zip(names, sess.run(None, feeds), strict=True))
            emb[rows] = res["embedding"]
        out[p] = emb
    np.savez(cache, **out)
    return out


def main() -> None:
    argv = sys.argv[1:]
    onnx_file = Path(argv[argv.index("--onnx") + 1])
    del argv[argv.index("--onnx") : argv.index("--onnx") + 2]
    save = None
    if "--save" in argv:
        save = Path(argv[argv.index("--save") + 1])
        del argv[argv.index("--save") : argv.index("--save") + 2]
    args = parse_args(["--stage", "essay", *argv])
    pack = Pack(args.pack)
    t0 = time.time()
    table = embed_all(pack, onnx_file)
    log = lambda m: print(f"[{time.time() - t0:6.1f}s] {m[:200]}", flush=True)  # noqa: E731
    ecfg, em, res = train_essay(args, pack, lambda p: table[p], "cpu", log)
    print(json.dumps({k: res[k] for k in ("out_of_fold", "valid_torch")}))
    if save is not None:
        import torch

        from engines.train import DEFAULTS

        save.parent.mkdir(parents=True, exist_ok=True)
        hp = {k: getattr(args, k) for k in DEFAULTS if k.startswith("essay") or k == "seed"}
        torch.save(
            {
                "essay_cfg": ecfg.to_dict(),
                "essay_members": getattr(em, "n_members", 1),
                "essay_state": {k: v.cpu() for k, v in em.state_dict().items()},
                "results": {"essay": res, "essay_hparams": hp, "embeddings": onnx_file.name},
            },
            save,
        )


if __name__ == "__main__":
    main()
