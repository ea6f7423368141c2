"""PyTorch peer of the ring allreduce: one torch.distributed gloo rank, driven by
bench/peers/allreduce-peers.ts over stdin/stdout (one JSON object a line).

  in:  {"n": elements, "iters": k}   (float32 tensor of n ones, summed k+1 times; the first warms up)
  out: RESULT {"times": [s, ...], "cpu": [s, ...], "ok": bool}
  in:  {"exit": true}

`cpu` is this process's CPU seconds (user + system, every thread: gloo reduces and moves bytes on
its own threads) per allreduce, from resource.getrusage, the same measure as process.cpuUsage in the
Node ranks.

usage: python3 bench/peers/allreduce_gloo.py RANK WORLD PORT
"""

import json
import resource
import sys
import time

import torch
import torch.distributed as dist


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    rank, world, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    dist.init_process_group(
        backend="gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    print("READY", flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("exit"):
            break
        n, iters = msg["n"], msg["iters"]
        data = torch.empty(n, dtype=torch.float32)
        times, cpus, ok = [], [], True
        for i in range(iters + 1):
            data.fill_(1.0)
            c0 = cpu_seconds()
            t0 = time.perf_counter()
            dist.all_reduce(data, op=dist.ReduceOp.SUM)
            dt = time.perf_counter() - t0
            dc = cpu_seconds() - c0
            if i > 0:
                times.append(dt)
                cpus.append(dc)
            if n > 0 and (data[0].item() != world or data[-1].item() != world):
                ok = False
        del data
        print("RESULT " + json.dumps({"times": times, "cpu": cpus, "ok": ok}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
