/**
 * The ring's float32 reduce, `dst[i] += src[i]`, as a WebAssembly SIMD kernel (f32x4.add).
 *
 * Why: the reduce is the largest JavaScript cost per byte of the raw-TCP ring (CPU profile in
 * docs/performance.md), and V8 does not vectorise the JavaScript loop: the unrolled loop adds about
 * 3.5-3.8 GB/s per core, the wasm kernel 18 GB/s. The kernel can only read its own linear memory,
 * so both operands are copied in and the sum copied out, in 32 KiB blocks that stay in the L1/L2
 * cache; with those copies it is still about 2x the JavaScript loop (bench: docs/performance.md).
 * IEEE float32 addition is correctly rounded in both, so sums are bit-identical to the loop's.
 *
 * The module is a few dozen bytes written out below (no toolchain, nothing built at install time):
 * one imported memory and `add(dst, src, bytes)` over 16-byte vectors. Where WebAssembly SIMD is
 * missing the JavaScript loop is used.
 *
 * A receiver can read its messages straight into a kernel's memory (`kernelBuffer`): a payload
 * there is added where it lies, so only the destination travels through the kernel (two copies
 * per block instead of three).
 */

/** Bytes per block copied through the kernel's memory (each operand). */
const BLOCK_BYTES = 32 * 1024;
const BLOCK = BLOCK_BYTES / 4;

// biome-ignore format: the module's bytes, one section a line
const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x07, 0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00, // type 0: (i32, i32, i32) -> ()
  0x02, 0x08, 0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x00, 0x01, // import "e" "m": memory, min 1 page
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x07, 0x07, 0x01, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00, // export "add" = function 0
  0x0a, 0x3b, 0x01, 0x39, 0x00, // code: one body of 57 bytes, no locals
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x20, 0x02, 0x45, 0x0d, 0x01, // if bytes == 0: break out
  0x20, 0x00, // address: dst
  0x20, 0x00, 0xfd, 0x00, 0x02, 0x00, // v128.load dst
  0x20, 0x01, 0xfd, 0x00, 0x02, 0x00, // v128.load src
  0xfd, 0xe4, 0x01, // f32x4.add
  0xfd, 0x0b, 0x02, 0x00, // v128.store at dst
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // dst += 16
  0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // src += 16
  0x20, 0x02, 0x41, 0x10, 0x6b, 0x21, 0x02, // bytes -= 16
  0x0c, 0x00, 0x0b, 0x0b, 0x0b, // continue; end loop, block, function
]);

type Kernel = { add(dst: number, src: number, bytes: number): void; mem: Float32Array };

let compiled: WebAssembly.Module | null | undefined;
let kernel: Kernel | null | undefined;
/** Benchmarks only: the JavaScript loop for every add (the before of the SIMD kernel). */
let forceJs = false;

/** Makes every add use the JavaScript loop (`true`) or the kernel where available (benchmarks). */
export function forceJsAdd(on: boolean): void {
  forceJs = on;
}

/** The compiled module, or null where WebAssembly SIMD is not available (compiled once). */
function compile(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  try {
    compiled = new WebAssembly.Module(MODULE);
  } catch {
    compiled = null;
  }
  return compiled;
}

/**
 * A kernel over a memory of `bytes` bytes (at least one page); null without WebAssembly SIMD, or
 * when that memory cannot be had (the caller then uses plain memory).
 */
function instantiate(bytes: number): { add: Kernel['add']; memory: WebAssembly.Memory } | null {
  const module = compile();
  if (!module) return null;
  try {
    const pages = Math.max(1, Math.ceil(bytes / 65536));
    // A fixed size: growing would detach the views handed out over this memory.
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const instance = new WebAssembly.Instance(module, { e: { m: memory } });
    return { add: instance.exports.add as Kernel['add'], memory };
  } catch {
    return null;
  }
}

/** The shared kernel (two blocks of scratch), or null where WebAssembly SIMD is not available. */
function load(): Kernel | null {
  if (kernel !== undefined) return kernel;
  const k = instantiate(2 * BLOCK_BYTES);
  kernel = k && { add: k.add, mem: new Float32Array(k.memory.buffer, 0, 2 * BLOCK) };
  return kernel;
}

/** Kernels whose memory holds a receive buffer (`kernelBuffer`), by that memory's ArrayBuffer. */
const receiving = new WeakMap<ArrayBufferLike, Kernel>();

/**
 * A buffer of `bytes` bytes inside a kernel's own memory, behind one block of scratch. Float32
 * values read into it are added by `addFloat32` without first being copied into a kernel. A plain
 * buffer where WebAssembly SIMD or that memory is missing.
 */
export function kernelBuffer(bytes: number): Buffer {
  const k = instantiate(BLOCK_BYTES + bytes);
  if (!k) return Buffer.allocUnsafeSlow(bytes);
  receiving.set(k.memory.buffer, { add: k.add, mem: new Float32Array(k.memory.buffer, 0, BLOCK) });
  return Buffer.from(k.memory.buffer, BLOCK_BYTES, bytes);
}

/** Whether the SIMD kernel runs here (false: the JavaScript loop does all adds). */
export function simdAddAvailable(): boolean {
  return load() !== null;
}

/** `dst[i] += src[i]` for the length of `dst` (the JavaScript loop, unrolled by 8). */
export function addFloat32Js(dst: Float32Array, src: Float32Array): void {
  const n = dst.length;
  const n8 = n - (n % 8);
  let i = 0;
  for (; i < n8; i += 8) {
    dst[i] += src[i];
    dst[i + 1] += src[i + 1];
    dst[i + 2] += src[i + 2];
    dst[i + 3] += src[i + 3];
    dst[i + 4] += src[i + 4];
    dst[i + 5] += src[i + 5];
    dst[i + 6] += src[i + 6];
    dst[i + 7] += src[i + 7];
  }
  for (; i < n; i++) dst[i] += src[i];
}

/** `dst[i] += src[i]` for the length of `dst`: the SIMD kernel in blocks, the loop for the tail. */
export function addFloat32(dst: Float32Array, src: Float32Array): void {
  const n = dst.length;
  const own = receiving.get(src.buffer);
  const k = own ?? load();
  if (!k || forceJs || n < 64) {
    addFloat32Js(dst, src);
    return;
  }
  // The destination goes through the scratch block at 0; the source is read where it lies when it
  // is in the kernel's memory, else it is copied into the second block.
  const a = k.mem.subarray(0, BLOCK);
  const b = own ? null : k.mem.subarray(BLOCK, 2 * BLOCK);
  const whole = n - (n % 4);
  for (let at = 0; at < whole; at += BLOCK) {
    const m = Math.min(BLOCK, whole - at);
    const d = dst.subarray(at, at + m);
    a.set(d);
    if (b) b.set(src.subarray(at, at + m));
    k.add(0, b ? BLOCK_BYTES : src.byteOffset + at * 4, m * 4);
    d.set(m === BLOCK ? a : a.subarray(0, m));
  }
  if (whole < n) addFloat32Js(dst.subarray(whole), src.subarray(whole, n));
}
