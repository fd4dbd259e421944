/**
 * Reading an HTTP response body with a size cap enforced while it streams in: a declared
 * `Content-Length` over the cap is refused before reading, and a body that grows past the cap (no
 * length, or a lying one) is cut off — the stream cancelled, nothing more read from the socket —
 * at the first chunk that would exceed it. Nothing from the network is buffered whole before its
 * size is known to be acceptable. Knows no protocol: the caller says what error "too large" is.
 */
export async function readCapped(res: Response, maxBytes: number, tooLarge: () => Error): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) throw tooLarge();
      chunks.push(value);
    }
  } catch (err) {
    await reader.cancel().catch(() => undefined);
    throw err;
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
