"""Model definitions (PyTorch, training only): sentence encoder with its heads, essay model.

Built upward nanoGPT-style: attention -> block -> encoder -> task models. Attention is
hand-written with scaled_dot_product_attention and an additive mask so the ONNX export has
truly dynamic batch and sequence axes (torch.nn.TransformerEncoder bakes the length in).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ESSAY_INPUTS",
    "ESSAY_OUTPUTS",
    "SENTENCE_INPUTS",
    "SENTENCE_OUTPUTS",
    "EncoderConfig",
    "EssayConfig",
    "EssayModel",
    "Generator",
    "SentenceModel",
]

SENTENCE_INPUTS = ("input_ids", "attention_mask")
SENTENCE_OUTPUTS = (
    "faulty_prob",
    "type_probs",
    "spell_detect_prob",
    "spell_cand_probs",
    "spell_cand_ids",
    "embedding",
)
ESSAY_INPUTS = ("sent_emb", "sent_feats", "sent_mask", "essay_feats")
ESSAY_OUTPUTS = ("trait_probs", "coherence_probs", "coherence_score")
NEG = -1e4  # additive mask value (finite, so fully padded rows stay NaN-free)


@dataclass
class EncoderConfig:
    vocab_size: int = 10000
    max_len: int = 128
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 256
    d_ff: int = 1024
    dropout: float = 0.1
    n_types: int = 7
    n_cand: int = 48

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C); bias (B, 1, 1, T) additive
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_head, dropout)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), bias))
        return x + self.drop(self.mlp(self.ln2(x)))


def additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 1/0 mask -> (B, 1, 1, T) additive bias."""
    return ((1.0 - mask.float()) * NEG)[:, None, None, :]


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, C)


class SentenceModel(nn.Module):
    """Encoder + heads: 病句 (binary + 7 types), spelling (detect + candidate choice), embedding.

    The spelling suggestion is a choice among K candidates per token, read from a constant
    confusion table (V, K) baked into the model (slot 0 = keep the character). Scoring only
    K candidates instead of the whole character vocabulary keeps the CPU latency low.
    """

    def __init__(self, cfg: EncoderConfig, confusion: torch.Tensor) -> None:
        super().__init__()
        self.cfg = cfg
        C = cfg.d_model
        self.tok_emb = nn.Embedding(cfg.vocab_size, C)
        self.pos_emb = nn.Embedding(cfg.max_len, C)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(C, cfg.n_head, cfg.d_ff, cfg.dropout) for _ in range(cfg.n_layer)
        )
        self.ln_f = nn.LayerNorm(C)
        # 病句 head reads mean- and max-pooled states (max pooling lets one local anomaly
        # decide); ged_head is a training-only token-level "edited here" auxiliary.
        self.faulty_head = nn.Sequential(
            nn.Linear(2 * C, C), nn.GELU(), nn.Linear(C, 1 + cfg.n_types)
        )
        self.ged_head = nn.Linear(C, 1)
        self.detect_head = nn.Linear(C, 1)
        self.cand_query = nn.Linear(C, C)
        self.cand_slot_bias = nn.Parameter(torch.zeros(cfg.n_cand))
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.register_buffer("confusion", confusion.long(), persistent=True)  # (V, K)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        pos = torch.arange(T, device=input_ids.device)
        x = self.drop(self.tok_emb(input_ids) + self.pos_emb(pos)[None])  # (B, T, C)
        bias = additive_mask(attention_mask)
        for block in self.blocks:
            x = block(x, bias)
        return self.ln_f(x)  # (B, T, C)

    def mlm_logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.tok_emb.weight.T + self.mlm_bias  # (..., V)

    def heads(
        self,
        h: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        with_cands: bool = True,
    ) -> dict[str, torch.Tensor]:
        pooled = masked_mean(h, attention_mask)  # (B, C)
        m = attention_mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
        maxed = (h + (m - 1.0) * 1e4).max(dim=1).values  # (B, C)
        fl = self.faulty_head(torch.cat([pooled, maxed], dim=-1))  # (B, 1 + n_types)
        out = {
            "faulty_logit": fl[:, 0],
            "type_logits": fl[:, 1:],
            "detect_logit": self.detect_head(h).squeeze(-1),  # (B, T)
            "ged_logit": self.ged_head(h).squeeze(-1),  # (B, T)
            "embedding": pooled,
        }
        if with_cands:
            out["cand_logits"], out["cand_ids"] = self.candidate_logits(h, input_ids)
        return out

    def candidate_logits(
        self, h: torch.Tensor, ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of the K confusion candidates of each token: h (..., C), ids (...)
        -> logits (..., K), candidate ids (..., K). Padding slots get NEG."""
        cand_ids = self.confusion[ids]  # (..., K)
        cand_emb = self.tok_emb(cand_ids)  # (..., K, C)
        q = self.cand_query(h)  # (..., C)
        logits = (cand_emb @ q.unsqueeze(-1)).squeeze(-1) / math.sqrt(h.shape[-1])
        logits = logits + self.cand_slot_bias
        valid = (cand_ids != 0) | (torch.arange(cand_ids.shape[-1], device=h.device) == 0)
        return logits.masked_fill(~valid, NEG), cand_ids

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """Export signature: probabilities, in SENTENCE_OUTPUTS order."""
        out = self.heads(self.encode(input_ids, attention_mask), input_ids, attention_mask)
        return (
            torch.sigmoid(out["faulty_logit"]),  # (B,)
            torch.sigmoid(out["type_logits"]),  # (B, 7)
            torch.sigmoid(out["detect_logit"]),  # (B, T)
            torch.softmax(out["cand_logits"].float(), dim=-1),  # (B, T, K)
            out["cand_ids"],  # (B, T, K) int64
            out["embedding"],  # (B, C)
        )


class Generator(nn.Module):
    """ELECTRA's generator (training only): a small masked LM that proposes replacements.

    It shares the sentence model's token and position embeddings (and its MLM output
    matrix, the transposed token embedding), as ELECTRA ties them; only its blocks and
    final norm are its own. Not exported."""

    def __init__(self, d_model: int, n_layer: int, n_head: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(d_model, n_head, d_ff, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.bias = nn.Parameter(torch.zeros(1))
        self.apply(SentenceModel._init)

    def forward(
        self, sm: SentenceModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        T = input_ids.shape[1]
        pos = torch.arange(T, device=input_ids.device)
        x = sm.drop(sm.tok_emb(input_ids) + sm.pos_emb(pos)[None])  # (B, T, C)
        bias = additive_mask(attention_mask)
        for block in self.blocks:
            x = block(x, bias)
        return self.ln_f(x)  # (B, T, C)

    def logits(self, sm: SentenceModel, h: torch.Tensor) -> torch.Tensor:
        return h @ sm.tok_emb.weight.T + sm.mlm_bias + self.bias  # (..., V)


@dataclass
class EssayConfig:
    d_in: int = 256
    n_sent_feats: int = 6
    n_essay_feats: int = 16
    d_model: int = 128
    n_layer: int = 1
    n_head: int = 4
    dropout: float = 0.2
    n_traits: int = 5
    n_disc_sent: int = 0  # discourse-function classes per sentence (0: no discourse head)
    n_disc_para: int = 0  # … and of the sentence's paragraph
    coh_own_trunk: bool = False  # coherence from a trunk without the discourse features

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


class EssayModel(nn.Module):
    """Sentence embeddings + structure features -> trait grades, coherence grade and score."""

    def __init__(self, cfg: EssayConfig, feat_mean: torch.Tensor, feat_std: torch.Tensor) -> None:
        super().__init__()
        self.cfg = cfg
        C = cfg.d_model
        self.register_buffer("feat_mean", feat_mean.float())
        self.register_buffer("feat_std", feat_std.float().clamp(min=1e-3))
        self.inp = nn.Sequential(
            nn.LayerNorm(cfg.d_in + cfg.n_sent_feats), nn.Linear(cfg.d_in + cfg.n_sent_feats, C)
        )
        self.blocks = nn.ModuleList(
            Block(C, cfg.n_head, 2 * C, cfg.dropout) for _ in range(cfg.n_layer)
        )
        self.ln_f = nn.LayerNorm(C)
        self.drop = nn.Dropout(cfg.dropout)
        n_disc = cfg.n_disc_sent + cfg.n_disc_para
        # discourse head: per-sentence function distributions; their grid features
        # (presence = max, proportion = mean, first position = expected relative position)
        # join the pooled vector, 3 per class
        self.disc_head = nn.Linear(C, n_disc) if n_disc else None
        d_all = 2 * C + cfg.n_essay_feats + 3 * n_disc
        self.trunk = nn.Sequential(nn.Linear(d_all, C), nn.GELU(), nn.Dropout(cfg.dropout))
        # with discourse features, coherence keeps a trunk without them: the tagger learns
        # argumentative (OE) functions, and CEDCC's narrative essays carry no such labels
        self.coh_trunk = (
            nn.Sequential(
                nn.Linear(2 * C + cfg.n_essay_feats, C), nn.GELU(), nn.Dropout(cfg.dropout)
            )
            if n_disc and cfg.coh_own_trunk
            else None
        )
        self.trait_head = nn.Linear(C, cfg.n_traits * 3)
        self.coh_head = nn.Linear(C, 3)
        self.coh_reg = nn.Linear(C, 1)

    def logits(
        self,
        sent_emb: torch.Tensor,
        sent_feats: torch.Tensor,
        sent_mask: torch.Tensor,
        essay_feats: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t, c, s, _ = self.all_logits(sent_emb, sent_feats, sent_mask, essay_feats)
        return t, c, s

    def all_logits(
        self,
        sent_emb: torch.Tensor,
        sent_feats: torch.Tensor,
        sent_mask: torch.Tensor,
        essay_feats: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Trait, coherence-grade, coherence-score logits and the discourse logits
        (B, S, n_disc_sent + n_disc_para), None without a discourse head."""
        x = self.inp(torch.cat([sent_emb, sent_feats], dim=-1))  # (B, S, C)
        bias = additive_mask(sent_mask)
        for block in self.blocks:
            x = block(self.drop(x), bias)
        x = self.ln_f(x)
        m = sent_mask.to(x.dtype).unsqueeze(-1)
        mean = (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, C)
        mx = (x + (m - 1.0) * 1e4).max(dim=1).values  # (B, C)
        ef = (essay_feats - self.feat_mean) / self.feat_std
        parts = [mean, mx, ef]
        dl = None
        if self.disc_head is not None:
            dl = self.disc_head(x)  # (B, S, n_disc)
            ns = self.cfg.n_disc_sent
            probs = torch.cat([dl[..., :ns].softmax(-1), dl[..., ns:].softmax(-1)], -1) * m
            n = m.sum(1).clamp(min=1.0)  # (B, 1)
            rel = torch.cumsum(sent_mask.to(x.dtype), 1).unsqueeze(-1) / n.unsqueeze(1)
            parts += [
                probs.max(1).values,  # presence
                probs.sum(1) / n,  # proportion
                (probs * rel).sum(1) / probs.sum(1).clamp(min=1e-3),  # where it comes
            ]
        z = self.trunk(torch.cat(parts, dim=-1))  # (B, C)
        zc = z if self.coh_trunk is None else self.coh_trunk(torch.cat(parts[:3], dim=-1))
        B = z.shape[0]
        trait_logits = self.trait_head(z).view(B, self.cfg.n_traits, 3)
        return trait_logits, self.coh_head(zc), self.coh_reg(zc).squeeze(-1), dl

    def forward(
        self,
        sent_emb: torch.Tensor,
        sent_feats: torch.Tensor,
        sent_mask: torch.Tensor,
        essay_feats: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Export signature, in ESSAY_OUTPUTS order. Score is 0..5 (CEDCC scale)."""
        t, c, s = self.logits(sent_emb, sent_feats, sent_mask, essay_feats)
        return torch.softmax(t, -1), torch.softmax(c, -1), 5.0 * torch.sigmoid(s)


class EssayEnsemble(nn.Module):
    """Mean of several EssayModels (different seeds); exports as one ONNX graph."""

    def __init__(self, members: list[EssayModel]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg
        self.n_members = len(members)

    def forward(
        self,
        sent_emb: torch.Tensor,
        sent_feats: torch.Tensor,
        sent_mask: torch.Tensor,
        essay_feats: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outs = [m(sent_emb, sent_feats, sent_mask, essay_feats) for m in self.members]
        t, c, s = (torch.stack([o[i] for o in outs]).mean(0) for i in range(3))
        return t, c, s
