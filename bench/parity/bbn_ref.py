"""PyTorch reference of BBN and CE for the parity bench (docs/parity.md), written to mirror the
official code (Megvii-Nanjing/BBN: lib/backbone/resnet_cifar.py, lib/net/network.py,
lib/core/combiner.py, lib/loss/loss.py, lib/dataset/imbalance_cifar.py) on the data exported by
`bench/parity/ours.ts export`.

Facts mirrored from the official code:
- BBN_ResNet_Cifar: conv3x3 -> BN -> ReLU, layer1 (n blocks), layer2 (n), layer3 (n - 1), then
  cb_block and rb_block (BasicBlock, stride 1); option-A shortcuts (x[:, :, ::2, ::2] zero-padded
  by planes // 4 channels per side); kaiming_normal_ (fan_in, gain sqrt 2) on every conv of the
  backbone; BN weight 1, bias 0, eps 1e-5, momentum 0.1 (PyTorch defaults).
- Network: GAP, then nn.Linear(2 * 4w, C, bias=True) with PyTorch's default init (the classifier is
  outside the backbone's _weights_init).
- Combiner.bbn_mix: two forward passes (uniform batch through cb_block, reversed batch through
  rb_block, train-mode BN each), mixed = 2 * cat(l * f_cb, (1 - l) * f_rb), one classifier,
  loss = l * CE(z, y_u) + (1 - l) * CE(z, y_r). Eval: classifier(cat(f_cb, f_rb)) on one batch.
- Reversed sampler: class by u * sum(w) against the running sum of w_c = N_max / N_c (first
  cumulative sum >= u * S), then random.choice of the class's images; the uniform branch is a
  shuffled DataLoader with drop_last. RandomCrop(side, padding=p) pads with zeros before
  ToTensor/Normalize; top then left offsets uniform in [0, 2p].
- SGD(momentum, weight_decay, nesterov) on all parameters; lr and l per epoch (exported, so both
  implementations use the same schedule).

Ingredients: `--init/--uniform/--reversed own|ours`. `own` draws them as the official code does
(torch.manual_seed(seed) for weights, a torch.Generator for order and crops, random.Random for the
reversed sampler); `ours` reads the project's draws of the same seed from the export (initial
weights; uniform rows and their crops; reversed rows and their crops).

usage: python bench/parity/bbn_ref.py --data DIR --out FILE.jsonl --seeds 0-9 [--methods bbn,ce]
       [--init own|ours] [--uniform own|ours] [--reversed own|ours] [--shard I/N] [--label TEXT]
"""

import argparse
import json
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes // 4 if (stride != 1 or cin != planes) else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + sc)


class Backbone(nn.Module):
    """ResNet-cifar of depth 6n+2, width w; `bbn` keeps stage 3's last block out, twice."""

    def __init__(self, depth, w, cin, bbn):
        super().__init__()
        n = (depth - 2) // 6
        self.bbn = bbn
        self.conv1 = nn.Conv2d(cin, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.in_planes = w
        self.layer1 = self._make(w, n, 1)
        self.layer2 = self._make(2 * w, n, 2)
        self.layer3 = self._make(4 * w, n - 1 if bbn else n, 2)
        if bbn:
            self.cb_block = BasicBlock(self.in_planes, self.in_planes)
            self.rb_block = BasicBlock(self.in_planes, self.in_planes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def _make(self, planes, blocks, stride):
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def trunk(self, x):
        return self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))


def gap(x):
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


class Net(nn.Module):
    def __init__(self, depth, w, cin, classes, bbn):
        super().__init__()
        self.backbone = Backbone(depth, w, cin, bbn)
        # 4w at every depth: at depth 8 layer3 still holds one block ([2] + [1] * -1 == [2]).
        self.classifier = nn.Linear(self.backbone.in_planes * (2 if bbn else 1), classes)
        self.bbn = bbn

    def feature(self, x, branch):
        return gap(getattr(self.backbone, branch)(self.backbone.trunk(x)))

    def bbn_loss(self, xu, yu, xr, yr, a):
        fu, fr = self.feature(xu, "cb_block"), self.feature(xr, "rb_block")
        z = self.classifier(2 * torch.cat([a * fu, (1 - a) * fr], dim=1))
        return a * F.cross_entropy(z, yu) + (1 - a) * F.cross_entropy(z, yr), z

    def ce_loss(self, x, y):
        z = self.forward(x)
        return F.cross_entropy(z, y), z

    def forward(self, x):
        h = self.backbone.trunk(x)
        if self.bbn:
            h = torch.cat([gap(self.backbone.cb_block(h)), gap(self.backbone.rb_block(h))], dim=1)
        else:
            h = gap(h)
        return self.classifier(h)


class Data:
    """The exported MNIST-LT set: normalised, zero-padded (before normalising) training images."""

    def __init__(self, d):
        self.meta = json.load(open(os.path.join(d, "meta.json")))
        m = self.meta
        h, w, c = m["imageShape"]
        raw = np.fromfile(os.path.join(d, "data.bin"), dtype=np.uint8)
        n, t, px = m["trainSize"], m["testSize"], h * w * c
        at = 0

        def take(count, dtype, size):
            nonlocal at
            a = raw[at : at + count * size].view(dtype)
            at += count * size
            return a

        tx = take(n * px, np.uint8, 1).reshape(n, h, w, c)
        ty = take(n, np.int32, 4)
        vx = take(t * px, np.uint8, 1).reshape(t, h, w, c)
        vy = take(t, np.int32, 4)
        mean = torch.tensor(m["mean"]).view(1, c, 1, 1)
        std = torch.tensor(m["std"]).view(1, c, 1, 1)
        p = m["padding"]
        to = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
        self.train_padded = (F.pad(to(tx), (p, p, p, p)) - mean) / std
        self.train_y = torch.from_numpy(ty.astype(np.int64))
        self.test_x = (to(vx) - mean) / std
        self.test_y = torch.from_numpy(vy.astype(np.int64))
        self.h, self.w, self.c, self.p = h, w, c, p
        counts = m["trainCounts"]
        self.class_weight = [max(counts) / k for k in counts]
        self.sum_weight = sum(self.class_weight)
        labels = ty.tolist()
        self.class_dict = {k: [i for i, y in enumerate(labels) if y == k] for k in range(len(counts))}

    def batch(self, rows, crops):
        """Rows (dataset positions) cropped at (top, left) offsets in the padded images."""
        x = torch.empty(len(rows), self.c, self.h, self.w)
        for i, (r, (top, left)) in enumerate(zip(rows, crops)):
            x[i] = self.train_padded[r, :, top : top + self.h, left : left + self.w]
        return x, self.train_y[rows]


def read_stream(d, seed, meta):
    """The project's draws of a seed, per epoch: (uniform, reversed, crops[stream, step, row, 2])."""
    raw = np.fromfile(os.path.join(d, f"seed-{seed}", "stream.bin"), dtype=np.int32)
    steps, b = meta["steps"], meta["batchSize"]
    out, at = [], 0
    for _ in range(len(meta["lr"])):
        u = raw[at : at + steps * b]
        r = raw[at + steps * b : at + 2 * steps * b]
        c = raw[at + 2 * steps * b : at + 6 * steps * b].reshape(2, steps, b, 2)
        at += 6 * steps * b
        out.append((u, r, c))
    return out


def load_init(net, d, seed, method):
    names = json.load(open(os.path.join(d, f"seed-{seed}", "init.json")))[method]
    raw = np.fromfile(os.path.join(d, f"seed-{seed}", f"{method}-init.bin"), dtype=np.float32)
    sd, at = net.state_dict(), 0
    for t in names:
        k = int(np.prod(t["shape"]))
        assert list(sd[t["name"]].shape) == t["shape"], t["name"]
        sd[t["name"]].copy_(torch.from_numpy(raw[at : at + k].reshape(t["shape"])))
        at += k
    assert at == raw.size


def evaluate(net, data, meta):
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(data.test_x[i : i + 256]).argmax(1) for i in range(0, len(data.test_y), 256)])
    net.train()
    counts = meta["trainCounts"]
    per = [float((pred[data.test_y == k] == k).float().mean()) for k in range(len(counts))]
    grp = lambda sel: float(np.mean([a for a, n in zip(per, counts) if sel(n)])) if any(sel(n) for n in counts) else None
    many, few = meta["manyThreshold"], meta["fewThreshold"]
    return {
        "top1": float((pred == data.test_y).float().mean()),
        "many": grp(lambda n: n > many),
        "medium": grp(lambda n: few <= n <= many),
        "few": grp(lambda n: n < few),
    }


def run(args, data, method, seed):
    meta = data.meta
    bbn = method == "bbn"
    torch.manual_seed(seed)
    net = Net(meta["size"]["depth"], meta["size"]["width"], data.c, meta["numClasses"], bbn)
    if args.init == "ours":
        load_init(net, args.data, seed, method)
    gen = torch.Generator().manual_seed(seed + 1_000_003)
    pyrand = random.Random(seed)
    ours = read_stream(args.data, seed, meta) if "ours" in (args.uniform, args.reversed) else None
    opt = torch.optim.SGD(
        net.parameters(), lr=meta["lr"][0], momentum=meta["momentum"],
        weight_decay=meta["weightDecay"], nesterov=meta["nesterov"],
    )
    b, steps, n = meta["batchSize"], meta["steps"], meta["trainSize"]
    crop = lambda k: torch.randint(0, 2 * data.p + 1, (k, 2), generator=gen).tolist()
    epochs = []
    for e in range(len(meta["lr"])):
        for g in opt.param_groups:
            g["lr"] = meta["lr"][e]
        a = meta["alpha"][e]
        if args.uniform == "ours":
            u_rows, u_crops = ours[e][0].tolist(), ours[e][2][0]
        else:
            u_rows, u_crops = torch.randperm(n, generator=gen)[: steps * b].tolist(), None
        if bbn and args.reversed == "ours":
            r_rows, r_crops = ours[e][1].tolist(), ours[e][2][1]
        elif bbn:
            r_rows, r_crops = [], None
            for _ in range(steps * b):
                u, s, k = pyrand.random() * data.sum_weight, 0.0, 0
                for k, wk in enumerate(data.class_weight):
                    s += wk
                    if u <= s:
                        break
                r_rows.append(pyrand.choice(data.class_dict[k]))
        loss_sum = 0.0
        for s in range(steps):
            xu, yu = data.batch(u_rows[s * b : (s + 1) * b], u_crops[s] if u_crops is not None else crop(b))
            if bbn:
                xr, yr = data.batch(r_rows[s * b : (s + 1) * b], r_crops[s] if r_crops is not None else crop(b))
                loss, _ = net.bbn_loss(xu, yu, xr, yr, a)
            else:
                loss, _ = net.ce_loss(xu, yu)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach())
        epochs.append({"epoch": e + 1, "loss": loss_sum / steps, **evaluate(net, data, meta)})
    return epochs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default="0-9")
    p.add_argument("--methods", default="bbn,ce")
    p.add_argument("--init", choices=["own", "ours"], default="own")
    p.add_argument("--uniform", choices=["own", "ours"], default="own")
    p.add_argument("--reversed", choices=["own", "ours"], default="own")
    p.add_argument("--shard", default="0/1")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--label", default="", help="appended to the variant (e.g. which derivation made the export)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    seeds = []
    for part in args.seeds.split(","):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi or lo) + 1))
    data = Data(args.data)
    index, count = map(int, args.shard.split("/"))
    jobs = [(s, m) for s in seeds for m in args.methods.split(",")]
    variant = f"init={args.init},uniform={args.uniform},reversed={args.reversed}{args.label}"
    for j, (seed, method) in enumerate(jobs):
        if j % count != index:
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        epochs = run(args, data, method, seed)
        row = {
            "impl": "torch", "variant": variant, "method": method, "seed": seed, "size": data.meta["size"],
            "wallSeconds": time.perf_counter() - t0, "cpuSeconds": time.process_time() - c0, "epochs": epochs,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"torch {variant} {method} seed {seed}: top-1 {100 * epochs[-1]['top1']:.1f} "
              f"({row['wallSeconds']:.0f} s wall, {row['cpuSeconds']:.0f} s cpu)", flush=True)


if __name__ == "__main__":
    main()
