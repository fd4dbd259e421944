/**
 * Member attachments and link embeds as the real discord.js client sees them, and the simulated
 * CDN behind them: signed attachment URLs (the given URL works, a forged or expired one is a 404),
 * measured image sizes, a link embed resolved later by MESSAGE_UPDATE, every request recorded,
 * and the fault switches a bounded download must survive.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Events, type Client, type Message } from 'discord.js';
import { loginClient, nextEvent, pngBytes, startWorld, type World } from './helpers.js';

let world: World | undefined;
let client: Client | undefined;

afterEach(async () => {
  await client?.destroy();
  client = undefined;
  await world?.sim.close();
  world = undefined;
});

/** A minimal JPEG header (SOI, APP0, SOF0 with 64×48): enough for Discord (and the simulator) to measure. */
function jpegHeader(width: number, height: number): Buffer {
  const sof = Buffer.from([0xff, 0xc0, 0x00, 0x11, 0x08, height >> 8, height & 0xff, width >> 8, width & 0xff, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
  return Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]), Buffer.from('JFIF\0', 'latin1'), Buffer.alloc(9), sof, Buffer.from([0xff, 0xd9])]);
}

/** Raw HTTP GET (no client-side parsing): what a server really sent, body bytes after the headers. */
function rawGet(url: string): Promise<{ head: string; body: Buffer }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), u.hostname, () => socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`));
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.on('end', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      resolve({ head: all.subarray(0, split).toString('latin1'), body: all.subarray(split + 4) });
    });
  });
}

describe('discord-sim attachments, link embeds and the CDN', () => {
  it('a member attachment: measured image, signed CDN URL that serves the bytes; forged or expired URLs are 404', async () => {
    world = await startWorld();
    const { sim, text, alice } = world;
    const c = await loginClient(sim);
    client = c;
    const png = pngBytes(40, 30);
    const jpg = jpegHeader(64, 48);
    const arrived = nextEvent<[Message]>(c, Events.MessageCreate);
    alice.say(text.id, 'my drawings', {
      attachments: [
        { filename: 'cat.png', data: png },
        { filename: 'dog.jpg', data: jpg },
        { filename: 'notes.txt', data: Buffer.from('hello') },
      ],
    });
    const [m] = await arrived;
    const [cat, dog, notes] = [...m.attachments.values()];
    expect(cat).toMatchObject({ name: 'cat.png', width: 40, height: 30, contentType: 'image/png', size: png.length });
    expect(dog).toMatchObject({ name: 'dog.jpg', width: 64, height: 48, contentType: 'image/jpeg' });
    expect(notes).toMatchObject({ name: 'notes.txt', width: null, height: null, contentType: 'text/plain; charset=utf-8' });

    const url = new URL(cat!.url);
    expect(cat!.url.startsWith(`${sim.cdnUrl}/attachments/${text.id}/${cat!.id}/cat.png?`)).toBe(true);
    expect([...url.searchParams.keys()]).toEqual(['ex', 'is', 'hm']);
    expect(cat!.proxyURL).toBe(cat!.url);
    const res = await fetch(cat!.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await res.arrayBuffer()).equals(png)).toBe(true);

    // The bot must use the URL it was given: without the signature, or with another one, 404.
    expect((await fetch(`${url.origin}${url.pathname}`)).status).toBe(404);
    url.searchParams.set('hm', 'f'.repeat(64));
    expect((await fetch(url)).status).toBe(404);
    // Signed URLs expire (24 h, like Discord's).
    sim.advanceCdnClock(25 * 3600);
    expect((await fetch(cat!.url)).status).toBe(404);
    expect(sim.cdnRequests.map((r) => [r.resource, r.status])).toEqual([
      ['attachment', 200],
      ['attachment', 404],
      ['attachment', 404],
      ['attachment', 404],
    ]);
  });

  it('a link embed arrives later: MESSAGE_CREATE without embeds, then MESSAGE_UPDATE with the proxied image', async () => {
    world = await startWorld();
    const { sim, text, alice } = world;
    const c = await loginClient(sim);
    client = c;
    const image = pngBytes(32, 24);
    const created = nextEvent<[Message]>(c, Events.MessageCreate);
    const updated = nextEvent<[Message, Message]>(c, Events.MessageUpdate);
    alice.say(text.id, 'look https://example.test/cat.png', { linkEmbeds: [{ url: 'https://example.test/cat.png', image, delayMs: 50 }] });
    const [first] = await created;
    expect(first.embeds).toHaveLength(0);
    const [, after] = await updated;
    expect(after.editedTimestamp).toBeNull(); // not an edit by the author
    const embed = after.embeds[0]!;
    expect(embed.data.type).toBe('image');
    expect(embed.url).toBe('https://example.test/cat.png');
    expect(embed.thumbnail).toMatchObject({ url: 'https://example.test/cat.png', width: 32, height: 24 });
    const proxyUrl = embed.thumbnail!.proxyURL as string;
    expect(proxyUrl.startsWith(`${sim.cdnUrl}/external/`)).toBe(true);
    const res = await fetch(proxyUrl);
    expect(Buffer.from(await res.arrayBuffer()).equals(image)).toBe(true);
    expect(sim.cdnRequests.at(-1)).toMatchObject({ resource: 'external', status: 200 });

    // An article-type embed puts the image in `image`.
    const update2 = nextEvent<[Message, Message]>(c, Events.MessageUpdate);
    alice.say(text.id, 'read https://example.test/post', { linkEmbeds: [{ url: 'https://example.test/post', image, type: 'article', title: 'A post', delayMs: 10 }] });
    const [, article] = await update2;
    expect(article.embeds[0]).toMatchObject({ title: 'A post' });
    expect(article.embeds[0]!.image?.proxyURL?.startsWith(sim.cdnUrl)).toBe(true);
  });

  it('CDN faults: wrong Content-Type, 404 once, a slow body, and bodies larger than announced', async () => {
    world = await startWorld();
    const { sim, text, alice } = world;
    const png = pngBytes(20, 20);
    const msg = alice.say(text.id, 'x', { attachments: [{ filename: 'a.png', data: png }] });
    const url = msg.attachments[0]!.url;

    sim.addCdnFault({ match: '/attachments/', fault: { kind: 'contentType', contentType: 'text/html' }, times: 1 });
    expect((await fetch(url)).headers.get('content-type')).toBe('text/html');
    sim.addCdnFault({ fault: { kind: 'notFound' }, times: 1 });
    expect((await fetch(url)).status).toBe(404);
    expect((await fetch(url)).status).toBe(200);

    // Slow: the announced length is right, the bytes trickle; a client that gives up is seen as aborted.
    sim.addCdnFault({ match: /a\.png/, fault: { kind: 'slowBody', intervalMs: 40, chunkBytes: 16 }, times: 1 });
    const ac = new AbortController();
    const slow = await fetch(url, { signal: ac.signal });
    expect(slow.headers.get('content-length')).toBe(String(png.length));
    const reader = slow.body!.getReader();
    await reader.read();
    ac.abort();
    await reader.read().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    const slowRecord = sim.cdnRequests.at(-1)!;
    expect(slowRecord).toMatchObject({ fault: 'slowBody', aborted: true });
    expect(slowRecord.bytesSent).toBeLessThan(png.length);

    // No length at all, and 100 kB of body: a download must cap what it reads itself.
    sim.addCdnFault({ fault: { kind: 'oversizedBody', bodyBytes: 100_000, contentLength: 'none' }, times: 1 });
    const unbounded = await fetch(url);
    expect(unbounded.headers.get('content-length')).toBeNull();
    expect((await unbounded.arrayBuffer()).byteLength).toBe(100_000);
    // A Content-Length that lies: the server really sends more bytes than it announced.
    sim.addCdnFault({ fault: { kind: 'oversizedBody', bodyBytes: 50_000 }, times: 1 });
    const lying = await rawGet(url);
    expect(lying.head).toContain(`content-length: ${png.length}`);
    expect(lying.body.length).toBe(50_000);
    expect(sim.cdnRequests.slice(-2).map((r) => r.fault)).toEqual(['oversizedBody', 'oversizedBody']);
  });

  it('refuses what the Discord client would not send', async () => {
    world = await startWorld();
    const { text, alice, guild } = world;
    const noFiles = guild.addTextChannel('no-files');
    noFiles.setPermissionOverwrite(guild.everyoneRoleId, { deny: 1n << 15n });
    expect(() => alice.say(noFiles.id, 'x', { attachments: [{ filename: 'a.txt', data: Buffer.from('a') }] })).toThrow(/attach/);
    expect(() => alice.say(text.id, 'no link here', { linkEmbeds: [{ url: 'https://example.test/x.png', image: pngBytes(1, 1) }] })).toThrow(/not in the message/);
    // An attachment alone is a valid message.
    expect(alice.say(text.id, '', { attachments: [{ filename: 'a.txt', data: Buffer.from('a') }] }).attachments).toHaveLength(1);
  });
});
