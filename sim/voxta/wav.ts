/**
 * A tiny WAV (RIFF, 16-bit PCM) writer and a lenient reader for what espeak-ng prints.
 * Self-contained on purpose: the simulator must not depend on the product's audio code.
 */

/** Encodes mono 16-bit PCM as a canonical 44-byte-header WAV file. */
export function encodeWav(pcm: Int16Array, sampleRate: number, channels = 1): Buffer {
  const dataBytes = pcm.length * 2;
  const out = Buffer.alloc(44 + dataBytes);
  out.write('RIFF', 0, 'ascii');
  out.writeUInt32LE(36 + dataBytes, 4);
  out.write('WAVE', 8, 'ascii');
  out.write('fmt ', 12, 'ascii');
  out.writeUInt32LE(16, 16); // fmt chunk size
  out.writeUInt16LE(1, 20); // PCM
  out.writeUInt16LE(channels, 22);
  out.writeUInt32LE(sampleRate, 24);
  out.writeUInt32LE(sampleRate * channels * 2, 28); // byte rate
  out.writeUInt16LE(channels * 2, 32); // block align
  out.writeUInt16LE(16, 34); // bits per sample
  out.write('data', 36, 'ascii');
  out.writeUInt32LE(dataBytes, 40);
  for (let i = 0; i < pcm.length; i++) out.writeInt16LE(pcm[i] ?? 0, 44 + i * 2);
  return out;
}

export interface DecodedWav {
  sampleRate: number;
  channels: number;
  pcm: Int16Array;
}

/**
 * Reads a 16-bit PCM WAV. Tolerates the placeholder sizes (0 or 0xFFFFFFFF) that streaming
 * writers such as `espeak-ng --stdout` put in the header: the data chunk then runs to the end.
 */
export function decodeWav(bytes: Buffer): DecodedWav {
  if (bytes.length < 12 || bytes.toString('ascii', 0, 4) !== 'RIFF' || bytes.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error('not a RIFF/WAVE file');
  }
  let offset = 12;
  let sampleRate = 0;
  let channels = 0;
  let bits = 0;
  while (offset + 8 <= bytes.length) {
    const id = bytes.toString('ascii', offset, offset + 4);
    const size = bytes.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === 'fmt ') {
      const format = bytes.readUInt16LE(body);
      channels = bytes.readUInt16LE(body + 2);
      sampleRate = bytes.readUInt32LE(body + 4);
      bits = bytes.readUInt16LE(body + 14);
      if (format !== 1 || bits !== 16) throw new Error(`unsupported WAV format ${format}/${bits} bit`);
    } else if (id === 'data') {
      if (!sampleRate) throw new Error('WAV data chunk before fmt chunk');
      const end = size === 0 || size === 0xffffffff || body + size > bytes.length ? bytes.length : body + size;
      const usable = (end - body) & ~1;
      const pcm = new Int16Array(usable / 2);
      for (let i = 0; i < pcm.length; i++) pcm[i] = bytes.readInt16LE(body + i * 2);
      return { sampleRate, channels, pcm };
    }
    offset = body + size + (size & 1);
  }
  throw new Error('WAV has no data chunk');
}
