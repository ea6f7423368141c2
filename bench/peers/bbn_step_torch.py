"""PyTorch peer of bench/step.ts: one BBN-ResNet-32 training step (BBN-SPEC §1.2, §2).

Uniform batch through trunk + cb_block, reversed batch through trunk + rb_block (two separate
forward passes, train-mode BN), GAP, mixed = 2*cat(a*fu, (1-a)*fr), one Linear(128, C),
loss = a*CE(z, yu) + (1-a)*CE(z, yr), backward, gradients flattened into one tensor (the update is
not applied, like the TypeScript step). Prints one line `RESULT {json}` in the same shape as
bench/step.ts.

usage: python3 bench/peers/bbn_step_torch.py [--threads 1] [--batch 128] [--steps 3] [--device cpu]
"""

import argparse
import json
import time

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


class BbnResNet32(nn.Module):
    def __init__(self, num_classes=10, n=5, w=16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        layers, cin = [], w
        for stage, planes in enumerate([w, 2 * w, 4 * w]):
            blocks = n - 1 if stage == 2 else n
            for i in range(blocks):
                layers.append(BasicBlock(cin, planes, 2 if stage > 0 and i == 0 else 1))
                cin = planes
        self.trunk = nn.Sequential(*layers)
        self.cb_block = BasicBlock(cin, cin)
        self.rb_block = BasicBlock(cin, cin)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
        self.classifier = nn.Linear(2 * cin, num_classes)

    def feature(self, x, block):
        h = self.trunk(F.relu(self.bn1(self.conv1(x))))
        return F.adaptive_avg_pool2d(block(h), 1).flatten(1)

    def step(self, xu, yu, xr, yr, a):
        fu = self.feature(xu, self.cb_block)
        fr = self.feature(xr, self.rb_block)
        z = self.classifier(2 * torch.cat([a * fu, (1 - a) * fr], dim=1))
        return a * F.cross_entropy(z, yu) + (1 - a) * F.cross_entropy(z, yr)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    model = BbnResNet32().to(dev).train()
    b = args.batch
    xu, xr = torch.randn(b, 3, 32, 32, device=dev), torch.randn(b, 3, 32, 32, device=dev)
    yu, yr = torch.randint(0, 10, (b,), device=dev), torch.randint(0, 10, (b,), device=dev)

    def one():
        model.zero_grad(set_to_none=True)
        loss = model.step(xu, yu, xr, yr, 0.7)
        loss.backward()
        flat = torch.cat([q.grad.reshape(-1) for q in model.parameters()]).cpu()
        return loss.item(), flat

    one()  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    c0 = time.process_time()  # CPU of every thread of the process
    for _ in range(args.steps):
        one()
    cpu = (time.process_time() - c0) / args.steps
    sec = (time.perf_counter() - t0) / args.steps
    n_params = sum(q.numel() for q in model.parameters())
    res = {
        "label": f"pytorch {torch.__version__} {args.threads} thread{'s' if args.threads > 1 else ''}",
        "batch": b,
        "secondsPerStep": sec,
        "cpuSecondsPerStep": cpu,
        "imagesPerSecond": 2 * b / sec,
        "note": f"{args.device}; {n_params} params",
    }
    print("RESULT " + json.dumps(res))


if __name__ == "__main__":
    main()
