// Smoke test of a tfjs-node native addon, run by scripts/setup-tfjs.sh before (is there anything to
// do?) and after (did the build work?) it builds one.
//
// usage: node scripts/tfjs/smoke.cjs PACKAGE [--expect-gpu]
//   PACKAGE       @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu
//   --expect-gpu  fail unless TensorFlow placed the ops on a GPU (set where an NVIDIA driver is
//                 present: there a silent fall-back to the CPU is a broken install)
//
// It loads the package (which loads the addon and libtensorflow), runs a float matmul and a
// string-tensor op through the C API (strings take a separate path through TensorFlow's
// TF_TString ABI, the part most likely to break with a mismatched TensorFlow), and prints one
// line on stdout, the verdict (TensorFlow's own logging goes to stderr). Exit status 0 only if
// every check passed.
'use strict';

// TensorFlow's C++ logging goes to stderr and would bury the one line that matters.
process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';

const pkg = process.argv[2];
const expectGpu = process.argv.includes('--expect-gpu');
if (!pkg) {
  console.error('usage: node scripts/tfjs/smoke.cjs PACKAGE [--expect-gpu]');
  process.exit(2);
}

function fail(message) {
  console.log(`smoke(${pkg}): ${message}`);
  process.exit(1);
}

let tf;
try {
  tf = require(pkg);
} catch (err) {
  fail(`does not load: ${String(err && err.message ? err.message : err).split('\n')[0]}`);
}
if (tf.getBackend() !== 'tensorflow') fail(`active backend is ${tf.getBackend()}, not tensorflow`);

const product = tf.tidy(() =>
  Array.from(tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])).dataSync()),
);
if (product.join(',') !== '19,22,43,50') fail(`matmul gave [${product}], want [19,22,43,50]`);

const words = ['bbn', 'long-tail', ''];
const back = tf.tidy(() => {
  const t = tf.reshape(tf.tensor1d(words, 'string'), [3, 1]);
  return t.dataSync().map((b) => (typeof b === 'string' ? b : Buffer.from(b).toString('utf8')));
});
if (back.join('|') !== words.join('|')) fail(`string tensor round trip gave ${JSON.stringify(back)}`);

const backend = tf.backend();
const gpu = backend.isUsingGpuDevice === true;
if (expectGpu && !gpu) {
  fail(
    'TensorFlow runs on the CPU although an NVIDIA driver is present: the CUDA 12 / cuDNN 8.9 ' +
      'libraries did not load (driver >= 525 needed; run with TF_CPP_MIN_LOG_LEVEL=0 to see why)',
  );
}
console.log(
  `smoke(${pkg}): ok: tfjs ${tf.version.tfjs}, TensorFlow ${backend.binding.TF_Version}, ` +
    `device ${gpu ? 'GPU' : 'CPU'}, matmul and string tensors pass`,
);
