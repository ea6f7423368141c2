import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { execForm, parseDockerfile, type Stage } from './dockerfile.ts';

const ROOT = new URL('../../', import.meta.url);
/** What the CLI build reads besides src/ (bin/dist.mjs, plain JavaScript without declarations). */
const { BUILD_INPUTS } = (await import(new URL('bin/dist.mjs', ROOT).href)) as { BUILD_INPUTS: string[] };
const read = (p: string) => readFileSync(new URL(p, ROOT), 'utf8');

const IMAGES = [
  { file: 'deploy/docker/Dockerfile.cpu', setup: 'bash scripts/setup-tfjs.sh' },
  { file: 'deploy/docker/Dockerfile.gpu', setup: 'bash scripts/setup-tfjs.sh --gpu' },
];

const finalStage = (stages: Stage[]) => stages[stages.length - 1];
const all = (stages: Stage[], keyword: string) =>
  stages.flatMap((s) => s.instructions.filter((i) => i.keyword === keyword));

describe('dockerfile reader', () => {
  it('joins continued lines, drops comments and resolves ARG defaults in FROM', () => {
    const { stages } = parseDockerfile(
      'ARG BASE=node:20.1-slim\n# c\nFROM $' +
        '{BASE} AS build\nRUN a \\\n  # inner\n  && b\nFROM $BASE\nUSER 1\n',
    );
    assert.deepEqual(
      stages.map((s) => [s.from, s.alias]),
      [
        ['node:20.1-slim', 'build'],
        ['node:20.1-slim', null],
      ],
    );
    assert.equal(stages[0].instructions[0].args, 'a && b');
    assert.throws(() => parseDockerfile('RUN x\n'), /line 1: RUN before the first FROM/);
  });
});

for (const { file, setup } of IMAGES) {
  describe(`image ${file}`, () => {
    const text = read(file);
    const { stages } = parseDockerfile(text);
    const last = finalStage(stages);

    it('is multi-stage, and the final stage runs as a non-root user', () => {
      assert.ok(stages.length >= 2, 'build tools must stay out of the final image');
      const users = last.instructions.filter((i) => i.keyword === 'USER');
      assert.ok(users.length > 0, 'final stage has no USER');
      const user = users[users.length - 1].args.split(':')[0];
      assert.notEqual(user, 'root');
      assert.ok(
        Number(user) > 0,
        `USER ${user} must be a non-zero numeric uid (runAsNonRoot checks numbers)`,
      );
      assert.match(text, new RegExp(`useradd --uid ${user}\\b`), 'the uid must exist in the image');
    });

    it('has one entry point, bbn', () => {
      const entry = last.instructions.filter((i) => i.keyword === 'ENTRYPOINT');
      assert.equal(entry.length, 1);
      assert.deepEqual(execForm(entry[0]), ['bbn']);
      assert.ok(
        last.instructions.some(
          (i) => i.keyword === 'RUN' && /ln -s \/app\/bin\/bbn\.mjs \/usr\/local\/bin\/bbn/.test(i.args),
        ),
      );
    });

    it('fails the build on any failed command: every stage that runs commands runs bash -euo pipefail', () => {
      for (const s of stages.filter((st) => st.instructions.some((i) => i.keyword === 'RUN'))) {
        const shell = s.instructions.find((i) => i.keyword === 'SHELL');
        assert.ok(shell, `stage FROM ${s.from} has no SHELL`);
        assert.ok(
          s.instructions.indexOf(shell) <= s.instructions.findIndex((i) => i.keyword === 'RUN'),
          'SHELL must come before the first RUN',
        );
        const argv = execForm(shell) ?? [];
        assert.equal(argv[0], '/bin/bash');
        assert.ok(argv.includes('-euo') && argv.includes('pipefail'), JSON.stringify(argv));
      }
    });

    it('checks what npm ci installed (npm can exit 0 after "Exit handler never called!")', () => {
      const ci = all(stages, 'RUN').find((i) => /\bnpm ci\b/.test(i.args));
      assert.match(ci?.args ?? '', /npm ci [^&]*&& npm ls --omit=dev --all/);
    });

    it('installs dependencies from the lock file only, without install scripts', () => {
      const runs = all(stages, 'RUN').map((i) => i.args);
      const ci = runs.filter((r) => /\bnpm ci\b/.test(r));
      assert.equal(ci.length, 1);
      assert.match(ci[0], /--ignore-scripts/);
      assert.ok(!runs.some((r) => /\bnpm (install|i)\b/.test(r)), 'npm install would bypass the lock file');
      const copies = all(stages, 'COPY').map((i) => i.args);
      const lockCopy = copies.findIndex((c) => c.includes('package-lock.json'));
      assert.ok(lockCopy >= 0, 'package-lock.json is not copied');
    });

    it("builds native TensorFlow with the project's set-up script", () => {
      const runs = all(stages, 'RUN').map((i) => i.args);
      assert.ok(
        runs.some((r) => r.includes(setup) && !(setup.endsWith('.sh') && r.includes(`${setup} --gpu`))),
        `no RUN of "${setup}"`,
      );
    });

    it('pins every base image to a version tag, never latest', () => {
      for (const s of stages) {
        if (stages.some((o) => o.alias === s.from)) continue; // a previous stage, not an image
        assert.match(s.from, /^[\w./-]+:[\w.-]+(@sha256:[0-9a-f]{64})?$/, `FROM ${s.from} has no tag`);
        assert.doesNotMatch(s.from, /:latest\b/);
        assert.match(s.from.split(':')[1], /\d/, `FROM ${s.from}: the tag must carry a version`);
      }
    });

    it('does not bake in the Temporal CLI or nats-server', () => {
      for (const i of [...all(stages, 'RUN'), ...all(stages, 'COPY')]) {
        assert.doesNotMatch(i.args, /\btemporal\b|nats-server|setup-servers/i, `line ${i.line}: ${i.args}`);
      }
    });

    it('copies everything the CLI build reads (bin/dist.mjs BUILD_INPUTS, src/) before it runs it', () => {
      const build = stages.find((s) =>
        s.instructions.some((i) => /build-dist\.mjs/.test(i.args) && i.keyword === 'RUN'),
      );
      assert.ok(build, 'no stage runs scripts/build-dist.mjs');
      const at = build.instructions.findIndex((i) => i.keyword === 'RUN' && /build-dist\.mjs/.test(i.args));
      const copied = build.instructions
        .slice(0, at)
        .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
        .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
      for (const input of [...BUILD_INPUTS, 'src']) {
        assert.ok(
          copied.some((c) => input === c.replace(/\/$/, '') || input.startsWith(c.replace(/\/?$/, '/'))),
          `${input} is not copied before the dist build`,
        );
      }
    });

    it('copies only paths that exist and that its .dockerignore lets through', () => {
      const ignore = read(`${file}.dockerignore`);
      for (const c of all(stages, 'COPY')) {
        if (c.args.startsWith('--from')) continue;
        const parts = c.args.split(/\s+/);
        for (const src of parts.slice(0, -1)) {
          assert.ok(existsSync(new URL(src, ROOT)), `COPY source ${src} (line ${c.line}) does not exist`);
          assert.ok(
            ignore.split('\n').some((l) => l === `!${src}` || l === `!${src.replace(/\/$/, '')}/**`),
            `${src} is excluded by ${file}.dockerignore`,
          );
        }
      }
    });
  });
}

describe('GPU image', () => {
  it('has a CUDA base matching the CUDA 12.2 / cuDNN 8.9 wheels that TensorFlow 2.15.1 was tested with', () => {
    const { stages } = parseDockerfile(read('deploy/docker/Dockerfile.gpu'));
    const cuda = stages.map((s) => s.from).filter((f) => f.startsWith('nvidia/cuda:'));
    assert.ok(cuda.length >= 2, 'both the build and the final stage must be on the CUDA base');
    for (const f of cuda) assert.match(f, /^nvidia\/cuda:12\.2\.\d+-[\w-]*ubuntu22\.04/);
    const wheels = read('scripts/tfjs/wheels.txt');
    assert.match(wheels, /^gpu tensorflow 2\.15\.1 /m);
    assert.match(wheels, /^gpu nvidia-cuda-runtime-cu12 12\.2\./m);
    assert.match(wheels, /^gpu nvidia-cudnn-cu12 8\.9\./m);
  });
});
