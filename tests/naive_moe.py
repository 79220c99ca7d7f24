"""MoE oracles (issue 5, moe/layer.py).

One token at a time, plain torch float64 per expert, Python sorting for the top-k (rule: larger
probability first, exact ties to the lower index). Slow on purpose.
"""


def naive_moe_token(x, router_w, router_b, w_gate, w_up, w_down, top_k, renormalize, softmax):
    """One token x float[D] -> (y float64[D], chosen expert list). ``softmax``: the op used on the
    logits.

    Weights: router_w [E, D], router_b [E], w_gate/w_up [E, H, D], w_down [E, D, H].
    """
    import torch

    E = router_w.shape[0]
    logits = [
        float((router_w[e].double() * x.double()).sum() + router_b[e].double()) for e in range(E)
    ]
    probs = softmax(torch.tensor(logits, dtype=torch.float32)[None])[0].tolist()
    chosen = sorted(range(E), key=lambda e: (-probs[e], e))[:top_k]
    ws = [probs[e] for e in chosen]
    if renormalize:
        tot = sum(ws)
        ws = [w / tot for w in ws]
    y = torch.zeros(x.shape[0], dtype=torch.float64)
    for w, e in zip(ws, chosen):
        g = w_gate[e].double() @ x.double()
        u = w_up[e].double() @ x.double()
        h = torch.nn.functional.silu(g) * u
        y += w * (w_down[e].double() @ h)
    return y, chosen


def naive_load_balancing_loss(probs, chosen, E):
    """probs: list of per-token probability lists, chosen: list of per-token expert lists
    -> E * sum f_i P_i."""
    n_assign = sum(len(c) for c in chosen)
    f = [sum(c.count(i) for c in chosen) / n_assign for i in range(E)]
    P = [sum(p[i] for p in probs) / len(probs) for i in range(E)]
    return E * sum(fi * pi for fi, pi in zip(f, P))
