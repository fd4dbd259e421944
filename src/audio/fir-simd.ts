/**
 * The resampler's dot-product loop as a tiny hand-assembled WebAssembly SIMD function.
 *
 * Why: the polyphase filter needs 72 multiply-adds per output sample (≥ 100 dB rejection), i.e.
 * 3.5 M per second of 48 kHz output; scalar JavaScript manages ~0.7 ns each (2.5 ms of CPU per
 * second of speech), which alone would eat half of the downlink CPU budget. With f32x4 lanes the
 * same work takes a fraction of that. No toolchain is needed: the module is ~200 bytes, built
 * below and compiled synchronously once per process. Where WebAssembly SIMD is unavailable,
 * {@link loadFirKernel} returns undefined and the resampler uses its JavaScript loop.
 *
 * Exported function `run(coefPtr, xPtr, outPtr, count, tapsBytes, L, M, phase, outStride)`:
 * for n in 0..count−1:
 *   out[n] = Σ_j coef[phase·taps + j] · x[j]  (f32, two f32x4 accumulators, fixed order)
 *   phase += M; while (phase ≥ L) { phase −= L; x += 1 }
 * `taps` must be a positive multiple of 8. All pointers are byte offsets into the imported
 * memory `e.m`. Every output sample is computed from the same inputs in the same order whatever
 * the call boundaries, so chunking cannot change the result.
 */

/** The slice of the WebAssembly API used here (the project's TS lib has no WebAssembly types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (desc: { initial: number; maximum?: number }) => { buffer: ArrayBuffer; grow(pages: number): number };
}
const Wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

export type FirRun = (coefPtr: number, xPtr: number, outPtr: number, count: number, tapsBytes: number, L: number, M: number, phase: number, outStride: number) => void;

export interface FirKernel {
  memory: { buffer: ArrayBuffer };
  run: FirRun;
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function section(id: number, body: number[]): number[] {
  return [id, ...leb(body.length), ...body];
}

function name(s: string): number[] {
  return [...leb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
}

// Opcodes.
const BLOCK = 0x02;
const LOOP = 0x03;
const END = 0x0b;
const BR = 0x0c;
const BR_IF = 0x0d;
const VOID = 0x40;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const I32_CONST = 0x41;
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_MUL = 0x6c;
const I32_LT_U = 0x49;
const I32_GE_U = 0x4f;
const F32_ADD = 0x92;
const F32_STORE = 0x38;
const SIMD = 0xfd;
const V128_LOAD = [SIMD, 0x00];
const V128_CONST = [SIMD, 0x0c];
const F32X4_EXTRACT = [SIMD, 0x1f];
const F32X4_ADD = [SIMD, 0xe4, 0x01];
const F32X4_MUL = [SIMD, 0xe6, 0x01];
const I32 = 0x7f;
const V128 = 0x7b;

// Locals: params 0..8, then n, cp, xp, end (i32) and acc0, acc1 (v128).
const P_COEF = 0, P_X = 1, P_OUT = 2, P_COUNT = 3, P_TAPSB = 4, P_L = 5, P_M = 6, P_PHASE = 7, P_STRIDE = 8;
const N = 9, CP = 10, XP = 11, CEND = 12, ACC0 = 13, ACC1 = 14;

function buildModule(): Uint8Array {
  const get = (i: number) => [LOCAL_GET, i];
  const set = (i: number) => [LOCAL_SET, i];
  const tee = (i: number) => [LOCAL_TEE, i];
  const body = [
    // locals
    2, 4, I32, 2, V128,
    BLOCK, VOID,
    LOOP, VOID,
    ...get(N), ...get(P_COUNT), I32_GE_U, BR_IF, 1,
    // cp = coef + phase * tapsBytes; end = cp + tapsBytes; xp = x
    ...get(P_COEF), ...get(P_PHASE), ...get(P_TAPSB), I32_MUL, I32_ADD, ...tee(CP),
    ...get(P_TAPSB), I32_ADD, ...set(CEND),
    ...get(P_X), ...set(XP),
    ...V128_CONST, ...new Array<number>(16).fill(0), ...tee(ACC0), ...set(ACC1),
    LOOP, VOID,
    ...get(ACC0), ...get(CP), ...V128_LOAD, 0, 0, ...get(XP), ...V128_LOAD, 0, 0, ...F32X4_MUL, ...F32X4_ADD, ...set(ACC0),
    ...get(ACC1), ...get(CP), ...V128_LOAD, 0, 16, ...get(XP), ...V128_LOAD, 0, 16, ...F32X4_MUL, ...F32X4_ADD, ...set(ACC1),
    ...get(CP), I32_CONST, 32, I32_ADD, ...tee(CP),
    ...get(XP), I32_CONST, 32, I32_ADD, ...set(XP),
    ...get(CEND), I32_LT_U, BR_IF, 0,
    END,
    // out = (l0 + l1) + (l2 + l3) of acc0 + acc1
    ...get(P_OUT),
    ...get(ACC0), ...get(ACC1), ...F32X4_ADD, ...tee(ACC0),
    ...F32X4_EXTRACT, 0, ...get(ACC0), ...F32X4_EXTRACT, 1, F32_ADD,
    ...get(ACC0), ...F32X4_EXTRACT, 2, ...get(ACC0), ...F32X4_EXTRACT, 3, F32_ADD,
    F32_ADD,
    F32_STORE, 2, 0,
    ...get(P_OUT), ...get(P_STRIDE), I32_ADD, ...set(P_OUT),
    // phase += M; while (phase >= L) { phase -= L; x += 4 }
    ...get(P_PHASE), ...get(P_M), I32_ADD, ...set(P_PHASE),
    BLOCK, VOID,
    LOOP, VOID,
    ...get(P_PHASE), ...get(P_L), I32_LT_U, BR_IF, 1,
    ...get(P_PHASE), ...get(P_L), I32_SUB, ...set(P_PHASE),
    ...get(P_X), I32_CONST, 4, I32_ADD, ...set(P_X),
    BR, 0,
    END,
    END,
    ...get(N), I32_CONST, 1, I32_ADD, ...set(N),
    BR, 0,
    END,
    END,
    END,
  ];
  const type = section(1, [1, 0x60, 9, ...new Array<number>(9).fill(I32), 0]);
  const imports = section(2, [1, ...name('e'), ...name('m'), 0x02, 0x00, 1]);
  const funcs = section(3, [1, 0]);
  const exports = section(7, [1, ...name('run'), 0x00, 0]);
  const code = section(10, [1, ...leb(body.length), ...body]);
  return Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...type, ...imports, ...funcs, ...exports, ...code]);
}

let compiled: object | null | undefined;

function compiledModule(): object | null {
  if (compiled !== undefined) return compiled;
  try {
    compiled = Wasm ? new Wasm.Module(buildModule()) : null;
  } catch {
    compiled = null; // no WebAssembly SIMD here: callers fall back to JavaScript
  }
  return compiled;
}

/** True when the SIMD kernel can be used in this runtime. */
export function firSimdAvailable(): boolean {
  return compiledModule() !== null;
}

/** A kernel instance with its own memory of at least `bytes` bytes, or undefined without SIMD. */
export function loadFirKernel(bytes: number): FirKernel | undefined {
  const mod = compiledModule();
  if (!mod || !Wasm) return undefined;
  const memory = new Wasm.Memory({ initial: Math.max(1, Math.ceil(bytes / 65536)) });
  const instance = new Wasm.Instance(mod, { e: { m: memory } });
  return { memory, run: instance.exports.run as FirRun };
}
