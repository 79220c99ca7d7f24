"""GGUF tokenizer oracles (issue 15, engine/tokenizer.py).

Textbook BPE in plain Python: added tokens cut out of the raw text (leftmost, then longest),
llama.cpp's split regex run with the `regex` module, GPT-2's byte -> character map rebuilt from
its definition, and merges applied lowest rank first (leftmost on ties), one pair at a time. For
the SentencePiece (Gemma) vocabulary: spaces -> U+2581, characters missing from the vocabulary ->
<0xXX> byte tokens, merges ranked by transformers' generate_merges recipe (sort by score = -file
position, then piece lengths).
"""


def naive_split_added(text, added):
    """[(piece, is_added)]: the added tokens found whole in ``text`` (leftmost match first,
    longest at a position), and the stretches between them."""
    out, buf, i = [], "", 0
    while i < len(text):
        hit = max((a for a in added if text.startswith(a, i)), key=len, default=None)
        if hit is None:
            buf += text[i]
            i += 1
            continue
        if buf:
            out.append((buf, False))
            buf = ""
        out.append((hit, True))
        i += len(hit)
    if buf:
        out.append((buf, False))
    return out


def naive_bpe(symbols, ranks):
    """Merge the adjacent pair of lowest rank (leftmost among equals) until none is left."""
    syms = list(symbols)
    while True:
        best = None
        for i in range(len(syms) - 1):
            r = ranks.get((syms[i], syms[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return syms
        i = best[1]
        syms[i : i + 2] = [syms[i] + syms[i + 1]]


def naive_gpt2_byte_map():
    """GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other bytes to
    chr(256), chr(257), ... in byte order."""
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    out, n = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def naive_byte_bpe_ids(text, tokens, merges, pattern, added=()):
    """Byte-level BPE ids: added tokens whole, every other stretch split by ``pattern``
    (``regex.findall``), bytes mapped to GPT-2 characters, merged by rank."""
    import regex

    vocab = {t: i for i, t in enumerate(tokens)}
    ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
    cmap = naive_gpt2_byte_map()
    ids = []
    for piece, is_added in naive_split_added(text, added):
        if is_added:
            ids.append(vocab[piece])
            continue
        for word in regex.findall(pattern, piece):
            syms = [cmap[b] for b in word.encode("utf-8")]
            ids += [vocab[s] for s in naive_bpe(syms, ranks)]
    return ids


def naive_generated_merges(tokens):
    """transformers' generate_merges(vocab, {token: -position}) for a vocabulary without
    merges: every split of a token into two entries, sorted by (score, len(left), len(right))
    descending."""
    vocab = {t: i for i, t in enumerate(tokens)}
    found = []
    for pos, t in enumerate(tokens):
        local = []
        for k in range(1, len(t)):
            a, b = t[:k], t[k:]
            if a in vocab and b in vocab:
                local.append((a, b, -pos))
        found += sorted(local, key=lambda x: (vocab[x[0]], vocab[x[1]]))
    found.sort(key=lambda x: (x[2], len(x[0]), len(x[1])), reverse=True)
    return [(a, b) for a, b, _ in found]


def naive_spm_bpe_ids(text, tokens, added=(), bos_id=None):
    """Gemma-style ids: optional BOS, added tokens whole, spaces -> U+2581, characters not in the
    vocabulary -> <0xXX> byte tokens, merges from :func:`naive_generated_merges`. A token of
    whitespace with a space in it stands for as many U+2581 (how the normalized text spells it).
    """
    tokens = ["\u2581" * len(t) if " " in t and not t.strip() else t for t in tokens]
    vocab = {t: i for i, t in enumerate(tokens)}
    ranks = {m: r for r, m in enumerate(naive_generated_merges(tokens))}
    ids = [] if bos_id is None else [bos_id]
    for piece, is_added in naive_split_added(text, added):
        if is_added:
            ids.append(vocab[piece])
            continue
        syms = []
        for ch in piece.replace(" ", "\u2581"):
            if ch in vocab:
                syms.append(ch)
            else:
                syms += [f"<0x{b:02X}>" for b in ch.encode("utf-8")]
        ids += [vocab[s] for s in naive_bpe(syms, ranks)]
    return ids
