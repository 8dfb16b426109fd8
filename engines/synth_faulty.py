"""Synthetic 病句: corrupt a correct sentence with one exam-type rule (CPU, jieba POS).

Written from the rule families that CLG describes (Ma et al., "Linguistic Rules-Based Corpus
Generation for Native Chinese Grammatical Error Correction", EMNLP Findings 2022; the
authors' code has no licence, so nothing of it is used):

    CM 成分残缺  drop the predicate verb or the object, or put a preposition (通过/经过/随着…)
                 before the subject so that the sentence loses it
    CR 成分赘余  add a word that repeats one already there (大约…左右, 忽然突然, 凯旋而归…)
    IWC 搭配不当 swap the verb of a verb–object pair for a verb of the same family
                 (提高/增加/改善/加强…), or keep one side of a two-sided word (能否…是)
    ILL 不合逻辑 insert a negation after 防止/避免/以免… or an absolute word before an
                 approximate one; swap 增加/减少-type numerals
    IWO 语序不当 swap coordinated words (A和B), move an adverb after its verb, swap two
                 attributes, move a connective before the subject
    SC 结构混乱  blend two templates (原因是…造成的, 由于…的结果, 以…为目的…)

`corrupt(words, rng)` takes jieba.posseg pairs (word, flag) and returns a `Corruption`
(faulty text, type code, character span of the edit in the faulty text) or None when no
rule of the drawn type applies. `generate` draws types evenly over the sentences given.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "TYPES",
    "Corruption",
    "corrupt",
    "generate",
    "pack_pairs",
    "tag",
    "unpack_batch",
    "unpack_pair",
]

TYPES = ("IWO", "IWC", "CM", "CR", "SC", "ILL")
Word = tuple[str, str]  # (word, jieba POS flag)

PUNCT_END = "。！？；…"
PREPOSITIONS = ("通过", "经过", "随着", "由于", "在", "对于", "关于")
SUBJECT_FLAGS = ("r", "n", "nr", "ns", "nt", "nz")
VERB_FAMILIES = (
    ("提高", "增加", "改善", "加强", "增强", "扩大", "提升", "增长"),
    ("减少", "降低", "缩小", "减轻", "下降", "削减"),
    ("发挥", "发扬", "发展", "发动", "发起"),
    ("培养", "养成", "培育", "树立", "建立", "形成"),
    ("开展", "进行", "举行", "召开", "举办", "实施"),
    ("实现", "达到", "完成", "满足", "取得", "获得"),
    ("保持", "维持", "坚持", "保护", "保障", "维护"),
    ("解决", "处理", "克服", "消除", "战胜"),
    ("推动", "促进", "推进", "加快", "推广"),
    ("学习", "掌握", "了解", "认识", "理解"),
)
VERB_FAMILY = {v: fam for fam in VERB_FAMILIES for v in fam}
REDUNDANT = {  # word -> words that repeat its meaning, inserted after (a) or before (b) it
    "忽然": ("突然",),
    "突然": ("忽然",),
    "大约": ("左右", "上下"),
    "凯旋": ("而归",),
    "必须": ("一定",),
    "过于": ("过分",),
    "总共": ("一共",),
    "目的": ("意图",),
    "原因": ("缘故",),
    "涌现": ("出来",),
    "互相": ("彼此",),
    "亲眼": ("目睹",),
    "滥用": ("过度",),
    "首先": ("第一",),
    "最": ("最为",),
    "都": ("全部",),
    "只": ("仅仅",),
    "将近": ("左右",),
    "不断": ("持续",),
    "再次": ("重新",),
}
APPROXIMATE = ("大约", "可能", "几乎", "大概", "也许", "左右", "将近", "差不多", "基本")
ABSOLUTE = ("绝对", "完全", "一定", "肯定", "全部")
PREVENT = ("防止", "避免", "以免", "禁止", "切忌", "防范", "杜绝", "免得")
NEGATIONS = ("不", "不再", "没有")
OPPOSITE_TREND = {"增加": "减少", "减少": "增加", "提高": "降低", "降低": "提高", "扩大": "缩小"}
CONNECTIVES = ("不但", "不仅", "虽然", "因为", "既", "如果", "只要")
TWO_SIDED_OF = {"能": "能否", "成功": "成败", "能够": "能否", "提高": "能否提高"}
ONE_SIDED_PREDICATES = ("关键", "保证", "前提", "条件", "取决于", "重要因素")
SC_TEMPLATES = (
    ("原因", "造成的"),
    ("原因", "导致的"),
    ("由于", "的结果"),
    ("靠", "的结果"),
    ("为了", "为目的"),
    ("关键", "的关键"),
    ("在于", "所在"),
    ("通过", "为手段"),
)


@dataclass(frozen=True, slots=True)
class Corruption:
    text: str  # the faulty sentence
    type: str  # one of TYPES
    spans: tuple[tuple[int, int], ...]  # characters of `text` the edit touched
    rule: str


def tag(text: str) -> list[Word]:
    import jieba
    import jieba.posseg as pseg

    jieba.setLogLevel(60)
    return [(p.word, p.flag) for p in pseg.cut(text)]


def _join(words: Sequence[str]) -> str:
    return "".join(words)


def _result(
    words: list[str], lo: int, hi: int, typ: str, rule: str, *more: tuple[int, int]
) -> Corruption:
    """words after the edit; [lo, hi) the edited word range (hi == lo: the point where words
    were dropped, marked as the character after it); `more`: further word ranges."""
    text = _join(words)
    spans = []
    for a, b in ((lo, hi), *more):
        start = min(len(_join(words[:a])), max(len(text) - 1, 0))
        end = len(_join(words[:b])) if b > a else start + 1
        spans.append((start, min(max(end, start + 1), len(text))))
    return Corruption(text, typ, tuple(spans), rule)


def _flags(words: Sequence[Word], prefix: str) -> list[int]:
    return [i for i, (_, f) in enumerate(words) if f.startswith(prefix)]


# ----------------------------------------------------------------------------- CM 成分残缺
def drop_verb(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    verbs = [i for i in _flags(ws, "v") if ws[i][1] in ("v", "vd") and len(ws[i][0]) >= 2]
    # the predicate of a clause: a verb right before its object, right after its subject or
    # an adverb (dropping a verb that only modifies another verb can leave a correct sentence)
    verbs = [
        i
        for i in verbs
        if 0 < i < len(ws) - 1
        and ws[i + 1][1].startswith(("n", "r"))
        and ws[i - 1][1].startswith(("n", "r", "d"))
    ]
    if not verbs:
        return None
    i = rng.choice(verbs)
    w = [x for x, _ in ws]
    return _result(w[:i] + w[i + 1 :], i, i, "CM", "drop_verb")


def drop_object(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    cands = [
        i
        for i in range(1, len(ws) - 1)
        if ws[i][1] in ("n", "vn", "nz")
        and ws[i - 1][1] in ("uj",)
        and ws[i + 1][0]
        and ws[i + 1][0][0] in "，。；！？"
    ]
    if not cands:
        return None
    i = rng.choice(cands)
    w = [x for x, _ in ws]
    return _result(w[:i] + w[i + 1 :], i, i, "CM", "drop_object_head")


def hide_subject(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    """这次活动使我们明白… -> 通过这次活动使我们明白…: a preposition swallows the subject."""
    if len(ws) < 4 or not ws[0][1].startswith(SUBJECT_FLAGS) or len(ws[0][0]) < 2:
        return None
    if not any(f.startswith("v") for _, f in ws[1:4]) or ws[1][1] == "x":
        return None
    w = [x for x, _ in ws]
    return _result([rng.choice(PREPOSITIONS[:4]), *w], 0, 1, "CM", "hide_subject")


# ----------------------------------------------------------------------------- CR 成分赘余
def add_redundant(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    cands = [i for i, (x, _) in enumerate(ws) if x in REDUNDANT]
    if not cands:
        return None
    i = rng.choice(cands)
    w = [x for x, _ in ws]
    extra = rng.choice(REDUNDANT[w[i]])
    if extra in ("左右", "上下"):  # 大约三十人左右: after the number + measure word
        j = i + 1
        while j < len(ws) and ws[j][1] in ("m", "q", "mq"):
            j += 1
        if j == i + 1 or j >= len(ws):
            return None
        return _result([*w[:j], extra, *w[j:]], j, j + 1, "CR", "approx_twice")
    return _result([*w[: i + 1], extra, *w[i + 1 :]], i, i + 2, "CR", "synonym_twice")


def double_adverb(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    ds = [i for i in _flags(ws, "d") if len(ws[i][0]) == 2 and ws[i][0] not in ("不是", "没有")]
    if len(ds) < 1:
        return None
    i = rng.choice(ds)
    w = [x for x, _ in ws]
    syn = {
        "非常": "十分",
        "十分": "非常",
        "已经": "早已",
        "仍然": "依然",
        "依然": "仍然",
        "正在": "正",
        "逐渐": "逐步",
        "逐步": "渐渐",
        "始终": "一直",
        "一直": "始终",
    }
    if w[i] not in syn:
        return None
    return _result([*w[:i], syn[w[i]], *w[i:]], i, i + 2, "CR", "adverb_twice")


# ----------------------------------------------------------------------------- IWC 搭配不当
def swap_collocation(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    cands = [i for i, (x, _) in enumerate(ws) if x in VERB_FAMILY]
    if not cands:
        return None
    i = rng.choice(cands)
    w = [x for x, _ in ws]
    w[i] = rng.choice([v for v in VERB_FAMILY[w[i]] if v != w[i]])
    return _result(w, i, i + 1, "IWC", "verb_family")


def one_sided(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    """能坚持是成功的关键 -> 能否坚持是成功的关键 is right; the faulty direction is a two-sided
    subject before a one-sided predicate: 能 -> 能否 where the predicate is one-sided
    (关键/保证/前提/条件), without a two-sided word already there."""
    text = _join(x for x, _ in ws)
    if not any(k in text for k in ONE_SIDED_PREDICATES) or "否" in text:
        return None
    cands = [i for i, (x, _) in enumerate(ws[:8]) if x in TWO_SIDED_OF]
    if not cands:
        return None
    i = rng.choice(cands)
    w = [x for x, _ in ws]
    w[i] = TWO_SIDED_OF[w[i]]
    return _result(w, i, i + 1, "IWC", "two_sided")


# ----------------------------------------------------------------------------- ILL 不合逻辑
def add_negation(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    cands = [i for i, (x, _) in enumerate(ws[:-1]) if x in PREVENT]
    if not cands:
        return None
    i = rng.choice(cands)
    w = [x for x, _ in ws]
    j = i + 1
    while j < len(ws) - 1 and not ws[j][1].startswith("v"):
        j += 1
    if j >= len(ws) - 1 or j - i > 6:
        j = i + 1
    return _result([*w[:j], rng.choice(NEGATIONS), *w[j:]], j, j + 1, "ILL", "double_negation")


def add_absolute(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    cands = [i for i, (x, _) in enumerate(ws) if x in APPROXIMATE]
    if not cands:
        return None
    i = rng.choice(cands)
    w = [x for x, _ in ws]
    return _result([*w[:i], rng.choice(ABSOLUTE), *w[i:]], i, i + 2, "ILL", "absolute_approx")


def flip_trend(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    cands = [
        i for i, (x, _) in enumerate(ws) if x in OPPOSITE_TREND and "倍" in _join(x for x, _ in ws)
    ]
    if not cands:
        return None
    i = rng.choice(cands)
    w = [x for x, _ in ws]
    w[i] = OPPOSITE_TREND[w[i]]
    return _result(w, i, i + 1, "ILL", "fold_decrease")


# ----------------------------------------------------------------------------- IWO 语序不当
def swap_coordinates(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    cands = [
        i
        for i in range(1, len(ws) - 1)
        if ws[i][0] in ("和", "与", "及", "并")
        and ws[i - 1][1][:1] == ws[i + 1][1][:1] != "x"
        and ws[i - 1][0] != ws[i + 1][0]
    ]
    if not cands:
        return None
    i = rng.choice(cands)
    w = [x for x, _ in ws]
    w[i - 1], w[i + 1] = w[i + 1], w[i - 1]
    return _result(w, i - 1, i + 2, "IWO", "swap_coordinates")


def adverb_after_verb(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    cands = [
        i
        for i in range(len(ws) - 2)
        if ws[i][1] == "d" and ws[i + 1][1] == "v" and ws[i][0] not in ("不", "没", "没有")
    ]
    if not cands:
        return None
    i = rng.choice(cands)
    w = [x for x, _ in ws]
    w[i], w[i + 1] = w[i + 1], w[i]
    return _result(w, i, i + 2, "IWO", "adverb_after_verb")


def swap_attributes(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    """Two attributes before one head (X的 Y的 N) change places."""
    cands = [
        i
        for i in range(len(ws) - 4)
        if ws[i + 1][0] == "的"
        and ws[i + 3][0] == "的"
        and ws[i][0] != ws[i + 2][0]
        and ws[i][1] != "x"
        and ws[i + 2][1] != "x"
    ]
    if not cands:
        return None
    i = rng.choice(cands)
    w = [x for x, _ in ws]
    w[i], w[i + 2] = w[i + 2], w[i]
    return _result(w, i, i + 3, "IWO", "swap_attributes")


def connective_position(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    """Subject + 不但 … -> 不但 + subject … (the connective leaves the shared subject)."""
    for i in range(1, min(len(ws) - 1, 5)):
        if ws[i][0] in CONNECTIVES and ws[i - 1][1].startswith(SUBJECT_FLAGS):
            w = [x for x, _ in ws]
            w[i - 1], w[i] = w[i], w[i - 1]
            return _result(w, i - 1, i + 1, "IWO", "connective_before_subject")
    return None


# ----------------------------------------------------------------------------- SC 结构混乱
def blend_templates(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    w = [x for x, _ in ws]
    text = _join(w)
    options = [(k, tail) for k, tail in SC_TEMPLATES if k in text]
    if not options or not w or w[-1] not in tuple(PUNCT_END):
        return None
    _, tail = rng.choice(options)
    n = len(w) - 1
    return _result([*w[:n], tail, *w[n:]], n, n + 1, "SC", "blend_templates")


def shi_de(ws: Sequence[Word], rng: random.Random) -> Corruption | None:
    """…是X的 blended with a plain predicate: add 是 before the first verb and 的 at the end."""
    vs = [i for i in _flags(ws, "v") if i > 0 and ws[i - 1][1].startswith(SUBJECT_FLAGS)]
    text = _join(x for x, _ in ws)
    if not vs or ws[-1][0] not in tuple(PUNCT_END) or "是" in text or len(text) > 40:
        return None
    i = vs[0]
    w = [x for x, _ in ws]
    n = len(w) - 1
    return _result([*w[:i], "是", *w[i:n], "的", *w[n:]], i, i + 1, "SC", "shi_de", (n + 1, n + 2))


RULES: dict[str, tuple[Callable[[Sequence[Word], random.Random], Corruption | None], ...]] = {
    "CM": (drop_verb, drop_object, hide_subject),
    "CR": (add_redundant, double_adverb),
    "IWC": (swap_collocation, one_sided),
    "ILL": (add_negation, add_absolute, flip_trend),
    "IWO": (swap_coordinates, adverb_after_verb, swap_attributes, connective_position),
    "SC": (blend_templates, shi_de),
}


def corrupt(words: Sequence[Word], rng: random.Random, typ: str | None = None) -> Corruption | None:
    """One corruption of the tagged sentence, of type `typ` (any type if None); the rules of
    that type are tried in random order and the first that applies wins."""
    types = [typ] if typ else rng.sample(TYPES, len(TYPES))
    original = _join(x for x, _ in words)
    for t in types:
        for rule in rng.sample(RULES[t], len(RULES[t])):
            c = rule(words, rng)
            if c is not None and c.text != original:
                return c
    return None


def generate(
    sentences: Iterable[str], rng: random.Random, per_sentence: int = 1
) -> Iterator[tuple[str, Corruption]]:
    """(correct sentence, corruption) pairs. Types are drawn evenly; a sentence where the
    drawn type has no rule tries the other types, so rare rules do not starve the rest."""
    for s in sentences:
        words = tag(s)
        seen: set[str] = set()
        for _ in range(per_sentence):
            typ = rng.choice(TYPES)
            c = corrupt(words, rng, typ) or corrupt(words, rng)
            if c is not None and c.text not in seen:
                seen.add(c.text)
                yield s, c


def pack_pairs(
    sentences: list[tuple[int, int, str]],
    flat: np.ndarray,
    tok: Any,
    rng: random.Random,
    n_pairs: int,
    max_rule_share: float = 0.15,
    max_repl: int = 48,
) -> dict[str, np.ndarray]:
    """Synthetic pairs as edits of corpus sentences (a few bytes each, so 500k travel).

    For pair i the correct sentence is flat[src[i] : src[i] + n[i]]; the faulty one replaces
    its tokens [a[i], b[i]) by repl[repl_off[i] : repl_off[i + 1]]; `type` indexes TYPES.
    The faulty sentence's edited tokens are [a, a + len(repl)) (or a - 1, a for a deletion).
    No single rule makes more than `max_rule_share` of the pairs."""
    order = list(range(len(sentences)))
    rng.shuffle(order)
    cap = int(n_pairs * max_rule_share)
    per_rule: Counter[str] = Counter()
    src, n, a_, b_, typ, repl_off = [], [], [], [], [], [0]
    repl: list[int] = []

    def candidates() -> Iterator[tuple[int, str]]:
        for i in order:
            _off, n_tok, text = sentences[i]
            if 12 <= len(text) <= 80 and 8 <= n_tok <= 100:
                yield i, text

    for i, text in candidates():
        if len(src) >= n_pairs:
            break
        off, n_tok, _ = sentences[i]
        correct = flat[off : off + n_tok].astype(np.int64).tolist()
        for _, c in generate([text], rng, per_sentence=2):
            if per_rule[c.rule] >= cap or len(src) >= n_pairs:
                continue
            faulty = tok.encode_ids(c.text)
            p = 0
            while p < min(len(faulty), len(correct)) and faulty[p] == correct[p]:
                p += 1
            s = 0
            while s < min(len(faulty), len(correct)) - p and faulty[-1 - s] == correct[-1 - s]:
                s += 1
            mid = faulty[p : len(faulty) - s]
            if len(mid) > max_repl or len(faulty) > 128:
                continue
            per_rule[c.rule] += 1
            src.append(off)
            n.append(n_tok)
            a_.append(p)
            b_.append(n_tok - s)
            typ.append(TYPES.index(c.type))
            repl.extend(mid)
            repl_off.append(len(repl))
    return {
        "src": np.array(src, np.uint32),
        "n": np.array(n, np.uint8),
        "a": np.array(a_, np.uint8),
        "b": np.array(b_, np.uint8),
        "type": np.array(typ, np.uint8),
        "repl_off": np.array(repl_off, np.uint32),
        "repl": np.array(repl, np.uint16),
    }


def unpack_pair(p: dict[str, np.ndarray], flat: np.ndarray, i: int) -> tuple[list[int], ...]:
    """(correct ids, faulty ids, faulty edit marks) of pair i of `pack_pairs`' arrays."""
    off, n, a, b = int(p["src"][i]), int(p["n"][i]), int(p["a"][i]), int(p["b"][i])
    correct = flat[off : off + n].astype(np.int64).tolist()
    mid = p["repl"][p["repl_off"][i] : p["repl_off"][i + 1]].astype(np.int64).tolist()
    faulty = correct[:a] + mid + correct[b:]
    marks = [0] * len(faulty)
    lo, hi = (a, a + len(mid)) if mid else (max(a - 1, 0), min(a + 1, len(faulty)))
    for t in range(lo, hi):
        marks[t] = 1
    return correct, faulty, marks


def unpack_batch(
    p: dict[str, np.ndarray], flat: np.ndarray, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`unpack_pair` for many pairs at once (vectorised; the training loop calls it every
    step): faulty ids, correct ids (both (n, T), 0-padded) and faulty edit marks (n, T; -1 on
    padding)."""
    off, n = p["src"][idx].astype(np.int64), p["n"][idx].astype(np.int64)
    a, b = p["a"][idx].astype(np.int64), p["b"][idx].astype(np.int64)
    r0 = p["repl_off"][idx].astype(np.int64)
    r = p["repl_off"][idx + 1].astype(np.int64) - r0
    nf = n - (b - a) + r  # faulty length
    T = int(max(n.max(), nf.max()))
    t = np.arange(T)[None]  # (1, T)
    correct = np.where(t < n[:, None], flat[np.minimum(off[:, None] + t, len(flat) - 1)], 0)
    src_t = np.where(t < a[:, None], t, t - r[:, None] + (b - a)[:, None])  # (n, T)
    from_corpus = flat[np.clip(off[:, None] + src_t, 0, len(flat) - 1)]
    in_repl = (t >= a[:, None]) & (t < (a + r)[:, None])
    from_repl = p["repl"][np.clip(r0[:, None] + t - a[:, None], 0, max(len(p["repl"]) - 1, 0))]
    faulty = np.where(in_repl, from_repl, from_corpus)
    faulty = np.where(t < nf[:, None], faulty, 0)
    lo = np.where(r > 0, a, np.maximum(a - 1, 0))
    hi = np.where(r > 0, a + r, np.minimum(a + 1, nf))
    marks = ((t >= lo[:, None]) & (t < hi[:, None])).astype(np.int64)
    marks = np.where(t < nf[:, None], marks, -1)
    return faulty.astype(np.int64), correct.astype(np.int64), marks
