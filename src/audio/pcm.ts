/**
 * Small PCM helpers (16-bit signed, little-endian, interleaved). All loops are plain typed-array
 * loops: these run on every 20 ms frame.
 */

/** Interleaved stereo → mono (average of L and R, rounded toward −∞ by the shift, exact for equal channels). */
export function stereoToMono(stereo: Int16Array): Int16Array {
  const n = stereo.length >> 1;
  const out = new Int16Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 2) out[i] = (stereo[j]! + stereo[j + 1]!) >> 1;
  return out;
}

/** Any number of interleaved channels → mono (the average, rounded toward −∞). */
export function downmix(interleaved: Int16Array, channels: number): Int16Array {
  if (channels === 1) return interleaved;
  if (channels === 2) return stereoToMono(interleaved);
  const n = Math.floor(interleaved.length / channels);
  const out = new Int16Array(n);
  for (let i = 0, j = 0; i < n; i++) {
    let acc = 0;
    for (let c = 0; c < channels; c++, j++) acc += interleaved[j]!;
    out[i] = Math.floor(acc / channels);
  }
  return out;
}

/** Mono → interleaved stereo (each sample duplicated). */
export function monoToStereo(mono: Int16Array): Int16Array {
  const n = mono.length;
  const out = new Int16Array(n * 2);
  for (let i = 0, j = 0; i < n; i++, j += 2) {
    const s = mono[i]!;
    out[j] = s;
    out[j + 1] = s;
  }
  return out;
}

/** Int16 → Float32 in [−1, 1). */
export function int16ToFloat32(pcm: Int16Array): Float32Array {
  const out = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = pcm[i]! / 32768;
  return out;
}

/** Float ([−1, 1] full scale) → Int16, rounded and clipped. */
export function float32ToInt16(samples: Float32Array | Float64Array): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.round(samples[i]! * 32768);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

/** Root mean square of the samples (on the Int16 scale). 0 for an empty frame. */
export function rms(pcm: Int16Array): number {
  const n = pcm.length;
  if (n === 0) return 0;
  let acc = 0;
  for (let i = 0; i < n; i++) {
    const s = pcm[i]!;
    acc += s * s;
  }
  return Math.sqrt(acc / n);
}

/** Level in dB relative to full scale (a full-scale square wave is 0 dBFS); −Infinity for silence. */
export function dbfs(pcm: Int16Array): number {
  const r = rms(pcm);
  return r === 0 ? -Infinity : 20 * Math.log10(r / 32768);
}

/**
 * Bytes → Int16Array view WITHOUT copying when the bytes are 2-byte aligned (a Buffer from the
 * pool may not be); copies otherwise. A trailing odd byte is ignored.
 */
export function bytesToInt16(bytes: Uint8Array): Int16Array {
  const count = bytes.byteLength >> 1;
  if ((bytes.byteOffset & 1) === 0) return new Int16Array(bytes.buffer, bytes.byteOffset, count);
  const copy = new Int16Array(count);
  new Uint8Array(copy.buffer).set(bytes.subarray(0, count * 2));
  return copy;
}

/** Int16Array → Buffer view of the same memory (no copy). */
export function int16ToBuffer(pcm: Int16Array): Buffer {
  return Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
}

/** Concatenates Int16 arrays into a new one. */
export function concatInt16(parts: readonly Int16Array[]): Int16Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Int16Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Applies a linear gain in place with clipping (cheaper than a separate volume transformer). */
export function applyGain(pcm: Int16Array, gain: number): Int16Array {
  for (let i = 0; i < pcm.length; i++) {
    const v = Math.round(pcm[i]! * gain);
    pcm[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return pcm;
}
