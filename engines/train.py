"""Train the Chinese sentence model and essay model, then export, evaluate and write the manifest.

    python -m engines.train                      # everything, on a CUDA GPU
    python -m engines.train --stage prepare      # CPU only (~11 min): tokenizer, confusion
                                                 # sets, corpus stream, synthetic 病句, pack
    python -m engines.train --stage fit --pack .pack --out .runs/full    # GPU: needs only the pack
    python -m engines.train --stage release --out .runs/full             # CPU: ONNX, INT8, manifest
    python -m engines.train --feedback DIR --install MODELS_DIR          # CPU: teacher feedback

Reads top to bottom: defaults, overrides, data, model, pre-training loop, fine-tuning loop,
evaluation on dev/valid, essay model, checkpoint, release. The split between `fit` and the
other stages exists because the GPU machine has neither the raw data nor jieba.
The defaults are the release-5 recipe (12×256 GPU tier; `--n_layer 4` for the CPU tier;
`engines/fit_tiers.sh` runs both), which has not shipped yet: the shipped sentence model is
release 4's (commit 99be17b's defaults). Each loop runs to its step count or its wall-clock
budget (seconds since `fit` began), whichever comes first, and its learning-rate schedule
follows whichever is ahead, so a run cut by its budget still anneals.
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------- defaults
DEFAULTS: dict[str, Any] = dict(
    seed=1337,
    # sentence encoder: deep and narrow (GPU tier 12 x 256; the CPU tier is --n_layer 4)
    n_layer=12,
    n_head=4,
    d_model=256,
    d_ff=1024,
    dropout=0.1,
    # pre-training, ELECTRA-style: a small generator (tied embeddings) fills mask_prob of the
    # tokens; half of those are replaced by a confusion candidate drawn from P(wrong | right)
    # instead; the encoder detects replaced tokens everywhere (weight rtd_weight), corrects
    # them among its candidates and over the whole vocabulary (the MLM term)
    pretrain_steps=60000,
    pretrain_batch=256,
    pretrain_lr=1e-3,
    mask_prob=0.15,
    confusion_share=0.5,
    gen_layers=2,
    gen_d_ff=512,
    rtd_weight=20.0,
    # fine-tuning: 病句 (real + synthetic pairs) + real spelling data (LEMON masked
    # fine-tuning: lemon_mask of the correct characters masked) + synthetic misspellings
    # (1-2 a sentence, matched to the real error mix), jointly
    finetune_steps=20000,
    faulty_batch=64,
    synth_faulty_batch=64,
    csc_batch=128,
    synth_batch=128,
    finetune_lr=3e-4,
    lemon_mask=0.2,
    p_clean=0.3,
    error_weight=3.0,
    ged_weight=1.0,
    synth_weight=0.5,
    synth_faulty_weight=0.5,
    cand_sample=0.15,  # fine-tuning: share of correct characters the candidate head trains on
    # essay model over frozen sentence embeddings
    essay_epochs=60,
    essay_batch=32,
    essay_lr=1e-3,
    essay_wd=0.05,
    essay_d_model=128,
    essay_layers=0,
    essay_folds=5,
    essay_discourse=False,  # discourse-function heads + grid features (engines.discourse);
    # off: on the shipped embeddings they tie the shipped essay model (engines/TRAINING.md)
    essay_disc_weight=0.5,
    max_sentences=96,
    warmup=300,
    weight_decay=0.01,
    grad_clip=1.0,
    log_every=200,
    compare_no_pretrain=False,  # True: also fine-tune a non-pre-trained model (ablation)
    # wall-clock budgets (seconds since `fit` began): a loop's learning-rate schedule runs on
    # max(step / steps, elapsed / budget), so a run cut by its budget still anneals
    pretrain_deadline_s=320.0,
    finetune_deadline_s=460.0,
    save_half=False,  # store the checkpoint's float weights as float16 (half the bytes)
    fit_essay=True,  # False: stop after the sentence model (`--stage essay` adds the essay
    # model on CPU later; saves the device ~75 s and the pack's essay arrays need not travel)
    smoke=False,  # CPU smoke test: evaluate on the first 64 dev / valid sentences only
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Train Inkstone's Chinese models")
    ap.add_argument(
        "--stage",
        choices=["all", "prepare", "fit", "essay", "release"],
        default="all",
        help="essay: retrain only the essay model of OUT/ckpt.pt (CPU is enough)",
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--pack", type=Path, default=Path(".pack"))
    ap.add_argument("--out", type=Path, default=Path(".runs/full"))
    ap.add_argument("--device", default=None)
    # teacher feedback (issue 14): fine-tune the released model instead (engines/feedback.py)
    ap.add_argument("--feedback", type=Path, default=None, help="inkstone export-feedback DIR")
    ap.add_argument("--install", type=Path, default=None, help="with --feedback: models dir")
    ap.add_argument("--feedback_steps", type=int, default=120)
    ap.add_argument("--valid_limit", type=int, default=400)
    ap.add_argument("--essay_steps", type=int, default=60)
    ap.add_argument("--essay_limit", type=int, default=60)
    for k, v in DEFAULTS.items():  # overrides: --pretrain_steps 100 ...
        kind = (lambda s: s.lower() in ("1", "true", "yes")) if isinstance(v, bool) else type(v)
        ap.add_argument(f"--{k}", type=kind, default=v)
    return ap.parse_args(argv)


def hparams(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in DEFAULTS}


# ----------------------------------------------------------------------------- data
class Pack:
    """The pretokenised arrays written by engines.prepare (see its docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.meta = json.loads((folder / "pack.json").read_text())
        with np.load(folder / "pack.npz") as z:
            self.a = {k: z[k] for k in z.files}
        self.confusion = np.load(folder / "confusion.npy")
        # the pre-training stream and misspelling weights (absent from packs made before
        # release 5, which `--stage essay` can still use)
        w, c = folder / "confusion_w.npy", folder / "corpus.u16.xz"
        self.confusion_w = np.load(w) if w.exists() else np.zeros(self.confusion.shape, np.float32)
        raw = lzma.decompress(c.read_bytes()) if c.exists() else b""
        self.corpus = np.frombuffer(raw, dtype=np.uint16)  # the pre-training token stream

    def split(self, prefix: str, dev: bool | None) -> dict[str, np.ndarray]:
        """Arrays under `prefix`; dev=True/False selects the dev carve-out or the rest."""
        out = {k[len(prefix) + 1 :]: v for k, v in self.a.items() if k.startswith(prefix + "_")}
        if dev is None:
            return out
        keep = out["dev"].astype(bool) == dev
        return {k: v[keep] for k, v in out.items()}


def fit(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from engines.metrics import auc, binary_scores, macro_f1_multilabel, sighan_scores
    from engines.model import EncoderConfig, Generator, SentenceModel
    from engines.runtime import spelling_scores
    from engines.synth_faulty import unpack_batch
    from engines.synth_spelling import corrupt_batch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    use_bf16 = device == "cuda"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    autocast = torch.autocast(
        device_type="cuda" if use_bf16 else "cpu", dtype=torch.bfloat16, enabled=use_bf16
    )
    pack = Pack(args.pack)
    if args.smoke:
        for k in [k for k in pack.a if k.startswith(("faulty_", "csc_"))]:
            pack.a[k] = pack.a[k][:: max(1, len(pack.a[k]) // 64)]
    t_start = time.time()
    log_lines: list[str] = []

    def log(msg: str) -> None:
        line = f"[{time.time() - t_start:7.1f}s] {msg}"
        print(line, flush=True)
        log_lines.append(line)

    def to_t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x.astype(np.int64)).to(device)

    confusion = torch.from_numpy(pack.confusion.astype(np.int64)).to(device)  # (V, K)
    V, K = confusion.shape
    is_char = (confusion[:, 1] != 0) | torch.zeros(V, dtype=torch.bool, device=device)  # (V,)

    def trim(ids: torch.Tensor, *more: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Cut padding columns beyond the longest sequence in the batch."""
        T = int((ids != 0).sum(1).max().clamp(min=1))
        return (ids[:, :T], *(m[:, :T] for m in more))

    # ------------------------------------------------------------------------- model
    def new_model() -> SentenceModel:
        cfg = EncoderConfig(
            vocab_size=V,
            max_len=pack.meta["max_len"],
            n_layer=args.n_layer,
            n_head=args.n_head,
            d_model=args.d_model,
            d_ff=args.d_ff,
            dropout=args.dropout,
            n_types=len(pack.meta["types"]),
            n_cand=K,
        )
        return SentenceModel(cfg, confusion.cpu()).to(device)

    def optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        return torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": args.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=lr,
            betas=(0.9, 0.98),
            fused=device == "cuda",
        )

    def lr_at(step: int, progress: float, peak: float) -> float:
        """Linear warm-up over `warmup` steps, then cosine to 0 as progress goes 0 -> 1."""
        if step < args.warmup:
            return peak * (step + 1) / args.warmup
        return peak * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    def progress_of(step: int, steps: int, t0: float, deadline: float) -> float:
        """Share of the loop done: by steps or by its wall-clock budget, whichever is ahead."""
        return max(step / steps, (time.time() - t0) / max(deadline - (t0 - t_start), 1.0))

    # ------------------------------------------------------------------------- spelling targets
    def spelling_targets(ids: torch.Tensor, gold: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """ids/gold (B, T) -> scored mask, detect target (B, T), candidate slot (B, T; -100)."""
        scored = is_char[ids] & (gold != 0)
        wrong = scored & (gold != ids)
        hit = confusion[ids] == gold.unsqueeze(-1)  # (B, T, K)
        slot = torch.where(hit.any(-1), hit.float().argmax(-1), torch.full_like(ids, -100))
        slot = torch.where(scored, slot, torch.full_like(ids, -100))
        return scored, wrong.float(), slot

    confusion_w = torch.from_numpy(pack.confusion_w.astype(np.float32)).to(device)  # (V, K)

    def corrupt(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Synthetic misspellings matched to the real mix (engines.synth_spelling)."""
        new = corrupt_batch(ids, confusion, confusion_w, is_char, p_clean=args.p_clean)
        return new, ids  # corrupted input, gold

    def spelling_loss(
        model: SentenceModel,
        h: torch.Tensor,
        ids: torch.Tensor,
        out: dict[str, torch.Tensor],
        scored: torch.Tensor,
        wrong: torch.Tensor,
        slot: torch.Tensor,
        cand_sample: float = 0.15,
        det_weight: float = 1.0,
    ) -> torch.Tensor:
        """Detection BCE on every scored character; candidate CE on every wrong character
        plus a random `cand_sample` share of the correct ones (scoring K candidates everywhere
        is costly; fine-tuning with cand_sample=1.0 was tried and was worse on dev, 0.376 vs
        0.387 sentence correction F1)."""
        det = h.sum() * 0.0
        if det_weight:
            w = scored.float() * (1 + (args.error_weight - 1) * wrong)
            det = F.binary_cross_entropy_with_logits(
                out["detect_logit"].float(), wrong, weight=w, reduction="sum"
            ) / w.sum().clamp(min=1)
        sampled = torch.rand(ids.shape, device=device) < cand_sample
        pick = (slot != -100) & (wrong.bool() | sampled)
        logits, _ = model.candidate_logits(h[pick], ids[pick])  # (N, K)
        cw = torch.where(wrong.bool()[pick], args.error_weight, 1.0)
        ce = F.cross_entropy(logits.float(), slot[pick], reduction="none")
        return det_weight * det + (ce * cw).sum() / cw.sum().clamp(min=1)

    # ------------------------------------------------------------------------- pre-training
    corpus = torch.from_numpy(pack.corpus.astype(np.int64)).to(device)  # (N_tokens,)
    win_off = torch.from_numpy(pack.a["pretrain_off"].astype(np.int64)).to(device)  # (W + 1,)

    def corpus_windows(n: int) -> torch.Tensor:
        """n random pre-training windows, (n, T) padded with 0 to the longest."""
        w = torch.randint(0, len(win_off) - 1, (n,), device=device)
        start, length = win_off[w], win_off[w + 1] - win_off[w]
        T = int(length.max())
        t = torch.arange(T, device=device)
        inside = t[None] < length[:, None]
        return torch.where(inside, corpus[(start[:, None] + t[None]).clamp(max=len(corpus) - 1)], 0)

    def pretrain(model: SentenceModel) -> dict[str, Any]:
        gen = Generator(args.d_model, args.gen_layers, args.n_head, args.gen_d_ff, args.dropout)
        gen = gen.to(device)
        opt = optimizer(torch.nn.ModuleList([model, gen]), args.pretrain_lr)
        model.train()
        t0, step, tokens = time.time(), 0, 0
        while True:
            progress = progress_of(step, args.pretrain_steps, t0, args.pretrain_deadline_s)
            if progress >= 1.0:
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(step, progress, args.pretrain_lr)
            ids = corpus_windows(args.pretrain_batch)  # (B, T)
            attn = (ids != 0).long()
            tokens += int(attn.sum())
            masked = (torch.rand(ids.shape, device=device) < args.mask_prob) & (ids > 4)
            with autocast:
                gl = gen.logits(model, gen(model, ids.masked_fill(masked, 4), attn)[masked])
                gen_loss = F.cross_entropy(gl.float(), ids[masked])
            with torch.no_grad():  # replacements: generator samples, or confusion candidates
                u = torch.rand_like(gl, dtype=torch.float32).clamp_(1e-9, 1.0)
                sample = (gl.float() - torch.log(-torch.log(u))).argmax(-1)  # Gumbel-max
                orig = ids[masked]
                w = confusion_w[orig]  # (M, K)
                has = w.sum(-1) > 0
                use_conf = has & (torch.rand(orig.shape, device=device) < args.confusion_share)
                w = torch.where(has[:, None], w, torch.zeros_like(w))
                w[:, 0] += (~has).float()
                slot = torch.multinomial(w, 1).squeeze(-1)
                conf = confusion[orig, slot]
                inp = ids.clone()
                inp[masked] = torch.where(use_conf, conf, sample)
                replaced = (inp != ids) & (attn == 1)
            with autocast:
                h = model.encode(inp, attn)
                det = model.detect_head(h).squeeze(-1).float()
                on = attn == 1
                rtd = F.binary_cross_entropy_with_logits(det[on], replaced[on].float())
                mlm = (
                    F.cross_entropy(model.mlm_logits(h[replaced]).float(), ids[replaced])
                    if replaced.any()
                    else h.sum() * 0.0
                )
                scored, wrong, slot_t = spelling_targets(inp, ids)
                cand = spelling_loss(model, h, inp, {}, scored, wrong, slot_t, det_weight=0.0)
                loss = gen_loss + args.rtd_weight * rtd + mlm + cand
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*model.parameters(), *gen.parameters()], args.grad_clip)
            opt.step()
            if step % args.log_every == 0:
                log(
                    f"pretrain {step:5d} gen {gen_loss.item():.3f} rtd {rtd.item():.4f} "
                    f"mlm {mlm.item():.3f} cand {cand.item():.3f} "
                    f"replaced {replaced.float().sum().item() / on.sum().item():.3f}"
                )
            step += 1
        log(f"pretrain done: {step} steps, {tokens / 1e6:.0f} M tokens, {time.time() - t0:.0f}s")
        return {"steps": step, "tokens": tokens, "seconds": time.time() - t0}

    # ------------------------------------------------------------------------- fine-tuning
    f_tr, f_dev = pack.split("faulty_train", False), pack.split("faulty_train", True)
    c_tr, c_dev = pack.split("csc_train", False), pack.split("csc_train", True)
    syn = pack.split("synfaulty", None)
    n_syn = len(syn["src"])

    def synth_faulty(n: int) -> tuple[np.ndarray, ...]:
        """n synthetic pairs -> ids (2n, T) (faulty rows, then their correct rows), label,
        one-hot types (2n, 7), edit marks (2n, T)."""
        idx = rng.integers(0, n_syn, n)
        faulty, correct, marks = unpack_batch(syn, pack.corpus, idx)
        T = max(faulty.shape[1], correct.shape[1])
        ids = np.zeros((2 * n, T), np.int64)
        ids[:n, : faulty.shape[1]], ids[n:, : correct.shape[1]] = faulty, correct
        ged = np.full((2 * n, T), -1, np.int64)
        ged[:n, : marks.shape[1]] = marks
        ged[n:] = np.where(ids[n:] != 0, 0, -1)
        types = np.zeros((2 * n, len(pack.meta["types"])), np.int64)
        types[np.arange(n), syn["type"][idx]] = 1
        labels = np.r_[np.ones(n, np.int64), np.zeros(n, np.int64)]
        return ids, labels, types, ged

    def faulty_loss(
        model: SentenceModel,
        fid: torch.Tensor,
        flab: torch.Tensor,
        ftyp: torch.Tensor,
        fged: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        fo = model.heads(
            model.encode(fid, (fid != 0).long()), fid, (fid != 0).long(), with_cands=False
        )
        loss_f = F.binary_cross_entropy_with_logits(fo["faulty_logit"].float(), flab)
        has_t = (ftyp.sum(1) > 0).float().unsqueeze(1)
        loss_t = (
            F.binary_cross_entropy_with_logits(fo["type_logits"].float(), ftyp, reduction="none")
            * has_t
        ).sum() / (has_t.sum() * ftyp.shape[1]).clamp(min=1)
        gm = (fged >= 0).float()
        loss_g = (
            F.binary_cross_entropy_with_logits(
                fo["ged_logit"].float(), fged.clamp(min=0).float(), reduction="none"
            )
            * gm
        ).sum() / gm.sum().clamp(min=1)
        return loss_f, loss_t, loss_g

    def lemon_mask(ids: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
        """Masked fine-tuning (LEMON): mask lemon_mask of the correct characters (their
        label stays "keep"; a masked position is not scored), so the model must read the
        context instead of memorising error pairs."""
        m = (torch.rand(ids.shape, device=device) < args.lemon_mask) & is_char[ids] & (gold == ids)
        return ids.masked_fill(m, 4)

    def finetune(model: SentenceModel) -> dict[str, Any]:
        opt = optimizer(model, args.finetune_lr)
        model.train()
        t0, step = time.time(), 0
        while True:
            progress = progress_of(step, args.finetune_steps, t0, args.finetune_deadline_s)
            if progress >= 1.0:
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(step, progress, args.finetune_lr)
            i = rng.integers(0, len(f_tr["ids"]), args.faulty_batch)
            fid, fged = trim(to_t(f_tr["ids"][i]), to_t(f_tr["ged"][i]))
            flab = to_t(f_tr["label"][i]).float()
            ftyp = to_t(f_tr["types"][i]).float()
            sid_np, slab, styp, sged = synth_faulty(args.synth_faulty_batch)
            j = rng.integers(0, len(c_tr["ids"]), args.csc_batch)
            cid, cgold = trim(to_t(c_tr["ids"][j]), to_t(c_tr["gold"][j]))
            cin = lemon_mask(cid, cgold)
            sin, sgold = corrupt(corpus_windows(args.synth_batch))
            with autocast:
                loss_f, loss_t, loss_g = faulty_loss(model, fid, flab, ftyp, fged)
                yf, yt, yg = faulty_loss(
                    model, to_t(sid_np), to_t(slab).float(), to_t(styp).float(), to_t(sged)
                )
                ch = model.encode(cin, (cin != 0).long())
                co = model.heads(ch, cin, (cin != 0).long(), with_cands=False)
                loss_c = spelling_loss(
                    model, ch, cin, co, *spelling_targets(cin, cgold), args.cand_sample
                )
                sh = model.encode(sin, (sin != 0).long())
                so = model.heads(sh, sin, (sin != 0).long(), with_cands=False)
                loss_s = spelling_loss(
                    model, sh, sin, so, *spelling_targets(sin, sgold), args.cand_sample
                )
                loss = (
                    loss_f
                    + loss_t
                    + args.ged_weight * loss_g
                    + args.synth_faulty_weight * (yf + yt + args.ged_weight * yg)
                    + loss_c
                    + args.synth_weight * loss_s
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            opt.step()
            if step % args.log_every == 0:
                log(
                    f"finetune {step:5d} faulty {loss_f.item():.3f} types {loss_t.item():.3f} "
                    f"ged {loss_g.item():.3f} synfaulty {yf.item():.3f} syntypes {yt.item():.3f} "
                    f"synged {yg.item():.3f} csc {loss_c.item():.3f} synth {loss_s.item():.3f}"
                )
            step += 1
        log(f"finetune done: {step} steps, {time.time() - t0:.0f}s")
        return {"steps": step, "seconds": time.time() - t0}

    # ------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def run_sentences(
        model: SentenceModel, ids_np: np.ndarray, bs: int = 512
    ) -> dict[str, np.ndarray]:
        """Eval-mode outputs for padded id rows (probabilities, as exported)."""
        model.eval()
        outs: dict[str, list[np.ndarray]] = {}
        names = ("faulty_prob", "type_probs", "detect_prob", "cand_probs", "cand_ids", "embedding")
        for s in range(0, len(ids_np), bs):
            ids = to_t(ids_np[s : s + bs])
            with autocast:
                res = model(ids, (ids != 0).long())
            for n, r in zip(names, res, strict=True):
                r = r.float() if r.is_floating_point() else r
                r = r.cpu().numpy()
                if r.ndim >= 2 and n not in ("type_probs", "embedding"):  # pad T back to 128
                    pad = [(0, 0), (0, ids_np.shape[1] - r.shape[1])] + [(0, 0)] * (r.ndim - 2)
                    r = np.pad(r, pad)
                outs.setdefault(n, []).append(r)
        model.train()
        return {k: np.concatenate(v) for k, v in outs.items()}

    def faulty_metrics(
        model: SentenceModel, d: dict[str, np.ndarray], thr: float
    ) -> dict[str, float]:
        o = run_sentences(model, d["ids"])
        y = d["label"].astype(bool)
        m = binary_scores(y, o["faulty_prob"] >= thr)
        m["auc"] = auc(y, o["faulty_prob"])
        m["type_macro_f1"] = macro_f1_multilabel(d["types"][y], o["type_probs"][y] >= 0.5)
        m["n"] = float(len(y))
        return m

    def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
        grid = np.linspace(0.05, 0.95, 91)
        return float(grid[int(np.argmax([binary_scores(y, p >= t)["mcc"] for t in grid]))])

    def spelling_preds(
        o: dict[str, np.ndarray], ids: np.ndarray, thr: float
    ) -> list[dict[int, int]]:
        """Flags by serving's rule (engines.runtime.spelling_scores) at threshold `thr`."""
        preds = []
        change, best = spelling_scores(o["cand_probs"])  # (B, T) each
        for b in range(len(ids)):
            flags = {}
            for t in np.nonzero((change[b] >= thr) & (ids[b] != 0))[0]:
                if o["cand_ids"][b, t, 1] == 0:
                    continue
                flags[int(t)] = int(o["cand_ids"][b, t, best[b, t]])
            preds.append(flags)
        return preds

    def spelling_metrics(
        model: SentenceModel, d: dict[str, np.ndarray], thr: float | None = None
    ) -> dict[str, float]:
        o = run_sentences(model, d["ids"])
        gold = [
            {
                int(t): int(g)
                for t in np.nonzero((g_row != i_row) & (g_row != 0))[0]
                for g in [g_row[t]]
            }
            for i_row, g_row in zip(d["ids"], d["gold"], strict=True)
        ]
        if thr is None:  # tune the flag threshold for sentence-level correction F1
            grid = np.r_[np.linspace(0.5, 0.9, 9), 0.93, 0.95, 0.97, 0.98, 0.99, 0.995]
            scores = [
                sighan_scores(gold, spelling_preds(o, d["ids"], t))["correct_f1"] for t in grid
            ]
            thr = float(grid[int(np.argmax(scores))])
        m = sighan_scores(gold, spelling_preds(o, d["ids"], thr))
        m["threshold"] = thr
        return m

    def evaluate_sentence_model(model: SentenceModel) -> dict[str, Any]:
        p_dev = run_sentences(model, f_dev["ids"])["faulty_prob"]
        f_thr = best_threshold(f_dev["label"].astype(bool), p_dev)
        s_dev = spelling_metrics(model, c_dev)
        valid_f = pack.split("faulty_valid", None)
        valid_c = pack.split("csc_valid", None)
        return {
            "faulty_threshold": f_thr,
            "spelling_threshold": s_dev["threshold"],
            "dev": {"faulty": faulty_metrics(model, f_dev, f_thr), "spelling": s_dev},
            "valid_torch": {
                "faulty": faulty_metrics(model, valid_f, f_thr),
                "spelling": spelling_metrics(model, valid_c, s_dev["threshold"]),
            },
        }

    # ------------------------------------------------------------------------- run: sentence model
    results: dict[str, Any] = {"hparams": hparams(args), "device": device}
    if device == "cuda":
        results["gpu"] = torch.cuda.get_device_name()
    if args.compare_no_pretrain:
        torch.manual_seed(args.seed + 1)
        base = new_model()
        finetune(base)
        results["no_pretrain"] = evaluate_sentence_model(base)
        log(f"no-pretrain: {json.dumps(results['no_pretrain']['valid_torch'])}")
        del base
    torch.manual_seed(args.seed)
    model = new_model()
    results["pretrain"] = pretrain(model)
    results["finetune"] = finetune(model)
    results["sentence"] = evaluate_sentence_model(model)
    log(f"pretrained: {json.dumps(results['sentence']['valid_torch'])}")

    # ------------------------------------------------------------------------- checkpoint
    def save(essay: tuple[Any, Any] | None) -> None:
        """OUT/ckpt.pt; saved once before the essay model too, so a run cut short keeps
        its sentence model (`--stage essay` can add the essay model on CPU)."""
        args.out.mkdir(parents=True, exist_ok=True)
        results["train_seconds"] = time.time() - t_start
        ckpt: dict[str, Any] = {
            "sentence_cfg": model.cfg.to_dict(),
            "sentence_state": {
                k: (v.half() if args.save_half else v.float()).cpu()
                if v.is_floating_point()
                else v.cpu()
                for k, v in model.state_dict().items()
            },
            "results": results,
        }
        if essay is not None:
            ecfg, em = essay
            ckpt["essay_cfg"] = ecfg.to_dict()
            ckpt["essay_members"] = getattr(em, "n_members", 1)
            ckpt["essay_state"] = {k: v.cpu() for k, v in em.state_dict().items()}
        torch.save(ckpt, args.out / "ckpt.pt")
        (args.out / "train_results.json").write_text(json.dumps(results, indent=1))
        (args.out / "train.log").write_text("\n".join(log_lines) + "\n")

    save(None)
    if not args.fit_essay:
        log(f"sentence model saved; essay stage skipped -> {args.out}")
        return results

    # ------------------------------------------------------------------------- essay model
    ecfg, em, results["essay"] = train_essay(
        args,
        pack,
        lambda p: run_sentences(model, pack.a[f"{p}_sent_ids"])["embedding"],
        device,
        log,
    )
    save((ecfg, em))
    log(f"done in {time.time() - t_start:.0f}s -> {args.out}")
    return results


def train_essay(
    args: argparse.Namespace,
    pack: Pack,
    embed: Callable[[str], np.ndarray],
    device: str,
    log: Callable[[str], None],
) -> tuple[Any, Any, dict[str, Any]]:
    """Essay model over frozen sentence embeddings (`embed`: pack prefix such as "oe_train"
    -> (N_sentences, D) embeddings of that split's essay sentences).
    Trained on OE traits and CEDCC coherence jointly, as a K-fold ensemble (see below)."""
    import torch
    import torch.nn.functional as F

    from engines.discourse import PARA_LABELS, SENT_LABELS
    from engines.metrics import pearson, qwk
    from engines.model import EssayConfig, EssayEnsemble, EssayModel
    from engines.ordinal import apply_cuts, expected_grade, fit_cuts

    rng = np.random.default_rng(args.seed)
    results: dict[str, Any] = {}

    def essays(prefix: str) -> dict[str, Any]:
        d = pack.split(prefix, None)
        emb = embed(prefix)
        off = d["offsets"]
        return {
            "emb": [emb[off[i] : off[i + 1]] for i in range(len(off) - 1)],
            "sf": [d["sent_feats"][off[i] : off[i + 1]] for i in range(len(off) - 1)],
            "ef": d["essay_feats"],
            "traits": d["traits"],
            "coh": d["coh_grade"],
            "score": d["coh_score"],
            "disc": [
                np.stack([d[f"disc_{u}"][off[i] : off[i + 1]] for u in ("sent", "para")], -1)
                if "disc_sent" in d
                else np.full((off[i + 1] - off[i], 2), -1, np.int64)
                for i in range(len(off) - 1)
            ],
        }

    def cat(*ds: dict[str, Any]) -> dict[str, Any]:
        return {
            k: (
                [x for d in ds for x in d[k]]
                if isinstance(ds[0][k], list)
                else np.concatenate([d[k] for d in ds])
            )
            for k in ds[0]
        }

    def sel(d: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
        idx = np.nonzero(mask)[0]
        return {k: ([v[i] for i in idx] if isinstance(v, list) else v[idx]) for k, v in d.items()}

    def batchify(d: dict[str, Any], idx: np.ndarray) -> tuple[torch.Tensor, ...]:
        S = min(max(len(d["emb"][i]) for i in idx), args.max_sentences)
        D, Fs = d["emb"][idx[0]].shape[1], d["sf"][idx[0]].shape[1]
        emb = np.zeros((len(idx), S, D), np.float32)
        sf = np.zeros((len(idx), S, Fs), np.float32)
        mask = np.zeros((len(idx), S), np.int64)
        for r, i in enumerate(idx):
            n = min(len(d["emb"][i]), S)
            emb[r, :n], sf[r, :n], mask[r, :n] = d["emb"][i][:n], d["sf"][i][:n], 1
        f = lambda x: torch.from_numpy(x).to(device)  # noqa: E731
        return f(emb), f(sf), f(mask), f(d["ef"][idx].astype(np.float32))

    def disc_labels(d: dict[str, Any], idx: np.ndarray) -> torch.Tensor:
        """(B, S, 2) sentence / paragraph discourse labels, -1 where none (and padding)."""
        S = min(max(len(d["emb"][i]) for i in idx), args.max_sentences)
        out = np.full((len(idx), S, 2), -1, np.int64)
        for r, i in enumerate(idx):
            n = min(len(d["disc"][i]), S)
            out[r, :n] = d["disc"][i][:n]
        return torch.from_numpy(out).to(device)

    @torch.no_grad()
    def essay_predict(em: EssayModel, d: dict[str, Any]) -> tuple[np.ndarray, ...]:
        em.eval()
        outs = [
            em(*batchify(d, np.arange(s, min(s + 64, len(d["ef"])))))
            for s in range(0, len(d["ef"]), 64)
        ]
        em.train()
        return tuple(np.concatenate([o[k].cpu().numpy() for o in outs]) for k in range(3))

    e_train = cat(essays("oe_train"), essays("cedcc_train"))
    e_valid_oe, e_valid_ce = essays("oe_valid"), essays("cedcc_valid")
    n_train = len(e_train["ef"])
    fm = torch.from_numpy(e_train["ef"].mean(0))
    fs = torch.from_numpy(e_train["ef"].std(0))
    ecfg = EssayConfig(
        d_in=args.d_model,
        n_sent_feats=e_train["sf"][0].shape[1],
        n_essay_feats=e_train["ef"].shape[1],
        d_model=args.essay_d_model,
        n_layer=args.essay_layers,
        n_traits=len(pack.meta["traits"]),
        n_disc_sent=len(SENT_LABELS) if args.essay_discourse else 0,
        n_disc_para=len(PARA_LABELS) if args.essay_discourse else 0,
        coh_own_trunk=args.essay_discourse,
    )

    def essay_loss(
        em: EssayModel, d: dict[str, Any], idx: np.ndarray, with_disc: bool = True
    ) -> torch.Tensor:
        tl, cl, sl, dl = em.all_logits(*batchify(d, idx))
        tr = torch.from_numpy(d["traits"][idx].astype(np.int64)).to(device)
        coh = torch.from_numpy(d["coh"][idx].astype(np.int64)).to(device)
        sc = torch.from_numpy(d["score"][idx]).to(device)
        loss = tl.sum() * 0.0  # each term only where its labels exist (all-ignored CE is NaN)
        if (tr >= 0).any():
            loss = loss + F.cross_entropy(tl.reshape(-1, 3), tr.reshape(-1), ignore_index=-1)
        if (coh >= 0).any():
            loss = loss + F.cross_entropy(cl, coh, ignore_index=-1)
            loss = loss + 4 * F.mse_loss(torch.sigmoid(sl)[coh >= 0], sc[coh >= 0] / 5.0)
        if with_disc and dl is not None:
            lab = disc_labels(d, idx)
            ns = ecfg.n_disc_sent
            for part, y in ((dl[..., :ns], lab[..., 0]), (dl[..., ns:], lab[..., 1])):
                if (y >= 0).any():
                    loss = loss + args.essay_disc_weight * F.cross_entropy(
                        part.reshape(-1, part.shape[-1]), y.reshape(-1), ignore_index=-1
                    )
        return loss

    @torch.no_grad()
    def disc_accuracy(em: Any, d: dict[str, Any]) -> dict[str, float]:
        """Sentence / paragraph function accuracy of the discourse head (mean of members)."""
        members = list(getattr(em, "members", [em]))
        if members[0].disc_head is None:
            return {}
        hits, n = np.zeros(2), 0.0
        for s in range(0, len(d["ef"]), 64):
            idx = np.arange(s, min(s + 64, len(d["ef"])))
            feeds = batchify(d, idx)
            dl = torch.stack([m.eval().all_logits(*feeds)[3] for m in members]).mean(0)
            lab = disc_labels(d, idx)
            ns = ecfg.n_disc_sent
            ok = lab[..., 0] >= 0
            hits[0] += (dl[..., :ns].argmax(-1) == lab[..., 0])[ok].sum().item()
            hits[1] += (dl[..., ns:].argmax(-1) == lab[..., 1])[ok].sum().item()
            n += ok.sum().item()
        for m in members:
            m.train()
        return {"disc_sent_acc": hits[0] / max(n, 1), "disc_para_acc": hits[1] / max(n, 1)}

    @torch.no_grad()
    def dev_loss(em: EssayModel, d: dict[str, Any]) -> float:
        em.eval()
        n = len(d["ef"])
        total = sum(
            essay_loss(em, d, np.arange(s, min(s + 64, n)), False).item() * min(64, n - s)
            for s in range(0, n, 64)
        )
        em.train()
        return total / n

    # K-fold ensemble: member k trains on the other folds and picks its epoch by the loss on
    # fold k, so every training essay gets one out-of-fold prediction; the grade cut points
    # are tuned on those (an honest estimate, unlike a dev set that also chose the epoch).
    folds = args.essay_folds
    fold_of = np.empty(n_train, dtype=np.int64)
    fold_of[rng.permutation(n_train)] = np.arange(n_train) % folds
    oof_traits = np.zeros((n_train, ecfg.n_traits, 3), np.float32)
    oof_coh = np.zeros((n_train, 3), np.float32)
    members: list[Any] = []
    best_epochs: list[int] = []
    for k in range(folds):
        torch.manual_seed(args.seed + k)
        e_fit, e_dev = sel(e_train, fold_of != k), sel(e_train, fold_of == k)
        em = EssayModel(ecfg, fm, fs).to(device)
        eopt = torch.optim.AdamW(em.parameters(), lr=args.essay_lr, weight_decay=args.essay_wd)
        best: tuple[float, dict[str, Any] | None, int] = (math.inf, None, -1)
        n_fit = len(e_fit["ef"])
        for epoch in range(args.essay_epochs):
            perm = rng.permutation(n_fit)
            for s in range(0, n_fit, args.essay_batch):
                loss = essay_loss(em, e_fit, perm[s : s + args.essay_batch])
                eopt.zero_grad(set_to_none=True)
                loss.backward()
                eopt.step()
            dl = dev_loss(em, e_dev)
            if dl < best[0]:
                best = (dl, {k_: v.detach().clone() for k_, v in em.state_dict().items()}, epoch)
        assert best[1] is not None
        em.load_state_dict(best[1])
        tp, cp, _ = essay_predict(em, e_dev)
        oof_traits[fold_of == k], oof_coh[fold_of == k] = tp, cp
        members.append(em)
        best_epochs.append(best[2])
    em = members[0] if len(members) == 1 else EssayEnsemble(members).to(device)

    cuts = {
        "trait_cuts": [
            fit_cuts(expected_grade(oof_traits[:, t]), e_train["traits"][:, t])
            for t in range(ecfg.n_traits)
        ],
        "coherence_cuts": fit_cuts(expected_grade(oof_coh), e_train["coh"]),
    }

    def essay_metrics(em: EssayModel, d: dict[str, Any]) -> dict[str, float]:
        tp, cp, cs = essay_predict(em, d)
        m = grade_metrics(tp, cp, d)
        if (d["coh"] >= 0).any():
            m["coherence_pearson"] = pearson(d["score"][d["coh"] >= 0], cs[d["coh"] >= 0])
        return m

    def grade_metrics(tp: np.ndarray, cp: np.ndarray, d: dict[str, Any]) -> dict[str, float]:
        m: dict[str, float] = {}
        for t, (name, _) in enumerate(pack.meta["traits"]):
            lab = d["traits"][:, t] >= 0
            if lab.any():
                pred = apply_cuts(expected_grade(tp[lab, t]), cuts["trait_cuts"][t])
                m[f"qwk_{name}"] = qwk(d["traits"][lab, t], pred, 3)
        if any(k.startswith("qwk_") for k in m):
            m["qwk_mean"] = float(np.mean([v for k, v in m.items() if k.startswith("qwk_")]))
        lab = d["coh"] >= 0
        if lab.any():
            pred = apply_cuts(expected_grade(cp[lab]), cuts["coherence_cuts"])
            m["coherence_qwk"] = qwk(d["coh"][lab], pred, 3)
        return m

    results["essay"] = {
        "best_epoch": best_epochs,
        "members": len(members),
        "decode": cuts,
        "out_of_fold": grade_metrics(oof_traits, oof_coh, e_train),
        "valid_torch": {
            "oe": essay_metrics(em, e_valid_oe) | disc_accuracy(em, e_valid_oe),
            "cedcc": essay_metrics(em, e_valid_ce),
        },
    }
    log(f"essay: {json.dumps(results['essay'])}")
    return ecfg, em, results["essay"]


def refit_essay(args: argparse.Namespace) -> None:
    """Retrain the essay model on top of the sentence model in OUT/ckpt.pt (runs on CPU)."""
    import torch

    from engines.export import load_models
    from engines.model import masked_mean

    sm, _, ckpt = load_models(args.out / "ckpt.pt")
    device = args.device or "cpu"
    sm = sm.to(device)
    t0 = time.time()

    @torch.no_grad()
    def embed(ids_np: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(ids_np), 256):
            ids = torch.from_numpy(ids_np[s : s + 256].astype(np.int64)).to(device)
            T = int((ids != 0).sum(1).max().clamp(min=1))
            ids = ids[:, :T]
            mask = (ids != 0).long()
            out.append(masked_mean(sm.encode(ids, mask), mask).float().cpu().numpy())
        return np.concatenate(out)

    cache = args.out / "essay_embeddings.npz"
    pack = Pack(args.pack)
    if cache.exists():
        with np.load(cache) as z:
            table = {k: z[k] for k in z.files}
    else:
        table = {
            p: embed(pack.a[f"{p}_sent_ids"])
            for p in ("oe_train", "cedcc_train", "oe_valid", "cedcc_valid")
        }
        np.savez(cache, **table)

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.1f}s] {msg}", flush=True)

    ecfg, em, res = train_essay(args, pack, lambda p: table[p], device, log)
    ckpt["essay_cfg"] = ecfg.to_dict()
    ckpt["essay_state"] = {k: v.cpu() for k, v in em.state_dict().items()}
    ckpt["essay_members"] = getattr(em, "n_members", 1)
    ckpt["results"]["essay"] = res
    ckpt["results"]["hparams"] = {
        k: v for k, v in ckpt["results"]["hparams"].items() if not k.startswith("essay")
    } | {k: getattr(args, k) for k in DEFAULTS if k.startswith("essay")}
    torch.save(ckpt, args.out / "ckpt.pt")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.feedback is not None:  # the teacher-feedback fine-tune, CPU (engines/feedback.py)
        from engines.feedback import run_feedback

        out = args.out if args.out != Path(".runs/full") else Path(".runs/feedback")
        manifest = run_feedback(
            args.feedback,
            out,
            args.data,
            install=args.install,
            steps=args.feedback_steps,
            valid_limit=args.valid_limit,
            seed=args.seed,
            essay_steps=args.essay_steps,
            essay_limit=args.essay_limit,
        )
        raise SystemExit(0 if manifest["feedback"]["gate"]["passed"] else 3)
    if args.stage in ("all", "prepare"):
        from engines.prepare import main as prepare_main

        prepare_main(["--data", str(args.data), "--pack", str(args.pack)])
    if args.stage in ("all", "fit"):
        fit(args)
    if args.stage == "essay":
        refit_essay(args)
    if args.stage in ("all", "release"):
        from engines.release import release

        release(args.out / "ckpt.pt", args.pack, args.data)


if __name__ == "__main__":
    main()
