/**
 * The CPU image as built here (`npm run images`, then `npm run test:containers-image`): it runs
 * as its non-root user on a read-only root file system with no capabilities (the chart's
 * securityContext), cannot change its own code, loads native TensorFlow and the ring's native data
 * plane, carries none of the build machine's private CA certificates or registry credentials, and
 * reports its size and the start time of `bbn --help` against a bare `node -e 0` in the same image.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { podman } from './podman.ts';

const IMAGE = process.env.BBN_IMAGE ?? 'localhost/bbn:0.1.0-cpu';
/** The CPU image measured 1.64 GB before the clean-up in Dockerfile.cpu (issue #18). */
const SIZE_BEFORE = 1.64e9;
/** The chart's pod and container securityContext, as podman flags. */
const LOCKED = [
  '--user',
  '10001:10001',
  '--read-only',
  '--read-only-tmpfs=false',
  '--tmpfs',
  '/tmp:rw,mode=1777',
  '--cap-drop',
  'ALL',
  '--security-opt',
  'no-new-privileges',
  '--network',
  'none',
];

const run = (args: string[]) => podman(['run', '--rm', ...LOCKED, ...args]);
const sh = (script: string) => run(['--entrypoint', 'bash', IMAGE, '-c', script]);

describe(`image ${IMAGE}`, () => {
  it('declares a non-root user, the bbn entry point, no exposed ports and no secret-like env', async () => {
    const cfg = JSON.parse(await podman(['image', 'inspect', '--format', '{{json .Config}}', IMAGE])) as {
      User: string;
      Entrypoint: string[];
      ExposedPorts?: Record<string, unknown>;
      Env: string[];
    };
    assert.equal(cfg.User, '10001:10001');
    assert.deepEqual(cfg.Entrypoint, ['bbn']);
    assert.equal(Object.keys(cfg.ExposedPorts ?? {}).length, 0);
    for (const e of cfg.Env) assert.doesNotMatch(e.split('=')[0], /TOKEN|PASSWORD|SECRET|_AUTH|CA_CERTS/i, e);
  });

  it('runs `bbn --help` and native TensorFlow locked down as the chart runs it', async (t: TestContext) => {
    const help = await run([IMAGE, '--help']);
    assert.match(help, /Usage: bbn/);
    const smoke = await run([
      '--entrypoint',
      'node',
      IMAGE,
      'scripts/tfjs/smoke.cjs',
      '@tensorflow/tfjs-node',
    ]);
    assert.match(smoke, /ok/i);
    // Timed inside one container (no engine overhead): bash's `time` gives wall, user and system
    // seconds; bbn runs twice, cold and then with tsx's transform cache in /tmp warm.
    const timing = await sh(
      "TIMEFORMAT='%R %U %S'; for c in 'node -e 0' 'bbn --help' 'bbn --help'; do { time $c >/dev/null 2>&1; } 2>&1; done",
    );
    const [bare, cold, warm] = timing.split('\n').map((l) => l.split(' ').map(Number));
    assert.ok(
      [bare, cold, warm].every((r) => r?.length === 3 && r.every(Number.isFinite)),
      timing,
    );
    const show = (r: number[]) => `${r[0].toFixed(2)} s wall, ${(r[1] + r[2]).toFixed(2)} s CPU`;
    t.diagnostic(
      `start-up inside the image: node -e 0 ${show(bare)}; bbn --help cold ${show(cold)} ` +
        `(${(cold[0] / bare[0]).toFixed(1)}x node), warm tsx cache ${show(warm)}`,
    );
  });

  it('moves a ring`s chunks on the native data plane, locked down (the addon the build made)', async () => {
    // Two ranks of a tcp ring in one process over the container's loopback, dataPlane 'native':
    // a config error if the image's addon were missing or did not load.
    const script = `
      import { CollectiveServer, RingAllreduce } from '/app/src/collective/index.ts';
      const n = 100003;
      const servers = await Promise.all([0, 1].map(() => CollectiveServer.listen({ host: '127.0.0.1', port: 0 })));
      const peers = servers.map((s) => s.address);
      const rings = await Promise.all(servers.map((server, rank) =>
        RingAllreduce.create({ runId: 'image', generation: 1, rank, worldSize: 2, peers, server, dataPlane: 'native' })));
      const data = [1, 2].map((k) => Float32Array.from({ length: n }, (_, i) => (i % 1000) * k));
      await Promise.all(rings.map((r, i) => r.allreduce(data[i], { epoch: 0, step: 0 })));
      const wrong = data.map((d) => d.filter((x, i) => x !== (i % 1000) * 3).length);
      console.log('planes ' + rings.map((r) => r.dataPlane).join(',') + '; wrong sums ' + wrong.join(','));
      await Promise.all(rings.map((r) => r.close()));
      await Promise.all(servers.map((s) => s.close()));`;
    const out = await run([
      '--entrypoint',
      'node',
      IMAGE,
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script,
    ]);
    assert.equal(out.trim().split('\n').at(-1), 'planes native,native; wrong sums 0,0', out);
  });

  it('cannot write its own code, even with a writable root', async () => {
    const out = await podman([
      'run',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      'bash',
      IMAGE,
      '-c',
      'id -u; touch /app/src/x 2>&1 || echo denied',
    ]);
    assert.deepEqual(out.split('\n').slice(-1), ['denied'], out);
    assert.equal(out.split('\n')[0], '10001');
  });

  it("the build's check after npm ci (npm ls) passes on its node_modules and fails on a half-written one", async () => {
    // What "Exit handler never called!" leaves: npm exited 0, a package is missing. The fault is
    // injected in a throwaway container (as root, the image's files are root's).
    const out = await podman([
      'run',
      '--rm',
      '--network',
      'none',
      '--user',
      '0',
      '--entrypoint',
      'bash',
      IMAGE,
      '-c',
      'cd /app; npm ls --omit=dev --all >/dev/null 2>&1; echo "full $?"; rm -rf node_modules/yaml; ' +
        'npm ls --omit=dev --all >/dev/null 2>&1; echo "half $?"',
    ]);
    assert.deepEqual(out.split('\n'), ['full 0', 'half 1']);
  });

  it("holds none of the build machine's private CA certificates and no registry credentials", async () => {
    // The certificates this machine trusts beyond Debian's bundle (an intercepting proxy's CA):
    // the builds had them mounted for their RUN steps only.
    const dir = '/usr/local/share/ca-certificates';
    let certs: string[] = [];
    try {
      certs = readdirSync(dir).filter((f) => f.endsWith('.crt'));
    } catch {}
    const needles = certs.map((f) => {
      const body = readFileSync(join(dir, f), 'utf8')
        .split('\n')
        .filter((l) => /^[A-Za-z0-9+/=]{64}$/.test(l));
      return body[Math.min(3, body.length - 1)];
    });
    for (const needle of needles.filter(Boolean)) {
      const found = await sh(`grep -rlF -- '${needle}' /etc /usr/local /app 2>/dev/null || true`);
      assert.equal(found, '', `a private CA certificate is in the image at ${found}`);
    }
    const npmrc = await sh('cat /app/.npmrc; ls -A /app/.npm /root 2>/dev/null || true');
    assert.doesNotMatch(npmrc, /_auth|_password|token/i);
    const history = await podman(['history', '--no-trunc', '--format', '{{.CreatedBy}}', IMAGE]);
    assert.doesNotMatch(history, /_authToken|password|BEGIN CERTIFICATE/i);
  });

  it('is smaller than before the clean-up', async (t: TestContext) => {
    const size = Number(await podman(['image', 'inspect', '--format', '{{.Size}}', IMAGE]));
    const du = await sh(
      'du -sm /app/node_modules /usr/local/lib/node_modules /usr/local/bin/node / 2>/dev/null | sort -n',
    );
    t.diagnostic(
      `image size ${(size / 1e6).toFixed(0)} MB (before: ${(SIZE_BEFORE / 1e6).toFixed(0)} MB); MB by path: ${du.replace(/\t/g, ' ').split('\n').join(', ')}`,
    );
    assert.ok(size < SIZE_BEFORE, `${size} bytes`);
  });
});
