"""Reference numbers of the first-step parity test (test/model/parity-step.test.ts), made by the
PyTorch mirror of the official BBN code (bbn_ref.py) from inputs written by step-fixture.ts.

For each case (BBN at alpha = 1, 0.5, 0; CE) one training step from the given initial parameters:
the loss, every parameter's gradient, the BN running buffers after the step, the SGD update
(params after - before; torch.optim.SGD with momentum, Nesterov, weight decay) and the eval-mode
logits of the uniform batch before and after the step, evaluated in float64 (the reference).
The same step in float32 is run too, and its relative error per tensor against float64 is stored
as the scale of PyTorch's own rounding. Tensors are stored in the project's layout (conv HWIO,
linear [in, out]), 7 significant digits.

usage: python bench/parity/step_ref.py --input IN.json --out test/model/fixtures/parity-step.json
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bbn_ref import Net  # noqa: E402


def ours_layout(t):
    a = t.detach().cpu().double().numpy()
    if a.ndim == 4:
        a = a.transpose(2, 3, 1, 0)
    elif a.ndim == 2:
        a = a.T
    return a.reshape(-1)


def rnd(a):
    return [float(f"{v:.7g}") for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def build(inp, variant, dtype):
    s = inp["spec"]
    h, w, c = s["inputShape"]
    net = Net(s["depth"], s["baseWidth"], c, s["numClasses"], variant == "bbn").to(dtype)
    sd = net.state_dict()
    v = next(x for x in inp["variants"] if x["variant"] == variant)
    for t in v["tensors"]:
        sd[t["name"]].copy_(torch.tensor(t["values"], dtype=dtype).reshape(t["shape"]))
    return net


def step(inp, variant, alpha, dtype):
    s = inp["spec"]
    h, w, c = s["inputShape"]
    b = inp["batch"]
    x = lambda k: torch.tensor(inp[k], dtype=dtype).reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
    y = lambda k: torch.tensor(inp[k], dtype=torch.int64)
    net = build(inp, variant, dtype)
    net.eval()
    with torch.no_grad():
        before_logits = net(x("xu"))
    net.train()
    before = {k: p.detach().clone() for k, p in net.named_parameters()}
    if variant == "bbn":
        loss, _ = net.bbn_loss(x("xu"), y("yu"), x("xr"), y("yr"), alpha)
    else:
        loss, _ = net.ce_loss(x("xu"), y("yu"))
    net.zero_grad()
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in net.named_parameters()}
    g = inp["sgd"]
    opt = torch.optim.SGD(net.parameters(), lr=g["lr"], momentum=g["momentum"],
                          weight_decay=g["weightDecay"], nesterov=g["nesterov"])
    opt.step()
    update = {k: p.detach() - before[k] for k, p in net.named_parameters()}
    buffers = {k: v for k, v in net.state_dict().items() if k.endswith("running_mean") or k.endswith("running_var")}
    net.eval()
    with torch.no_grad():
        after_logits = net(x("xu"))
    return {
        "loss": float(loss.detach()),
        "grads": grads,
        "update": update,
        "buffers": buffers,
        "logitsBefore": before_logits,
        "logitsAfter": after_logits,
    }


def rel(a, ref):
    a, ref = ours_layout(a), ours_layout(ref)
    n = np.linalg.norm(ref)
    return float(np.linalg.norm(a - ref) / n) if n > 0 else float(np.abs(a).max())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    inp = json.load(open(args.input))
    torch.set_num_threads(1)
    cases = [("bbn", a) for a in inp["alphas"]] + [("single", None)]
    out = {
        "made": "npm run bench:parity:fixture (bench/parity/step-fixture.ts -> bench/parity/step_ref.py)",
        "torch": torch.__version__,
        "spec": inp["spec"],
        "batch": inp["batch"],
        "sgd": inp["sgd"],
        "fingerprint": {"inputs": inp["fingerprint"]["inputs"],
                        **{v["variant"]: v["fingerprint"] for v in inp["variants"]}},
        "cases": [],
    }
    for variant, alpha in cases:
        r64 = step(inp, variant, alpha, torch.float64)
        r32 = step(inp, variant, alpha, torch.float32)
        full = alpha in (None, 0.5)
        case = {
            "variant": variant,
            "alpha": alpha,
            "loss": r64["loss"],
            "torch32LossRel": abs(r32["loss"] - r64["loss"]) / abs(r64["loss"]),
            "grads": {k: rnd(ours_layout(v)) for k, v in r64["grads"].items()},
            "buffers": {k: rnd(ours_layout(v)) for k, v in r64["buffers"].items()},
            "logitsBefore": rnd(r64["logitsBefore"]),
            "torch32Rel": {
                "grads": {k: rel(r32["grads"][k], v) for k, v in r64["grads"].items()},
                "buffers": {k: rel(r32["buffers"][k], v) for k, v in r64["buffers"].items()},
            },
        }
        if full:
            case["update"] = {k: rnd(ours_layout(v)) for k, v in r64["update"].items()}
            case["logitsAfter"] = rnd(r64["logitsAfter"])
        out["cases"].append(case)
    with open(args.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    worst = max(max(c["torch32Rel"]["grads"].values()) for c in out["cases"])
    print(f"wrote {args.out}: {len(out['cases'])} cases; PyTorch float32 vs float64, worst gradient rel {worst:.2e}")


if __name__ == "__main__":
    main()
