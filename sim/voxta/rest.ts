/**
 * The HTTP side: REST helpers (characters, chats, thumbnails) and TTS downloads. Requests reach
 * here already authenticated.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { avatarPng } from './png.js';
import { humanizeAgo } from './chat-store.js';
import { characterListItem, scenarioInfo, thumbnailUrlOf } from './characters.js';
import { findCharacter, findParticipant, type SimContext } from './context.js';
import { errorInfo } from '../../src/log.js';

const thumbnails = new Map<string, Buffer>();

/** Answers a REST or TTS request; returns false when the path is not one of ours. */
export function handleHttp(ctx: SimContext, req: IncomingMessage, res: ServerResponse, url: URL): boolean {
  const path = url.pathname;
  let m: RegExpMatchArray | null;
  if (path === '/api/characters' || path === '/api/characters/') {
    return get(req, res, () => sendJson(res, 200, { characters: ctx.options.characters.map(characterListItem) }));
  }
  if (path === '/api/scenarios' || path === '/api/scenarios/') {
    // MC bot-engine-voxta.ts loadScenarios reads {scenarios:[{id, name, client?}]}; the items are ScenarioInfo.
    return get(req, res, () => sendJson(res, 200, { scenarios: [...ctx.options.scenarios].sort((a, b) => a.name.localeCompare(b.name)).map((s) => scenarioInfo(s)) }));
  }
  if ((m = path.match(/^\/api\/characters\/([^/]+)\/thumbnail$/))) {
    const id = decodeURIComponent(m[1] ?? '');
    return get(req, res, () => sendThumbnail(ctx, res, id));
  }
  if ((m = path.match(/^\/api\/characters\/([^/]+)\/?$/))) {
    const id = decodeURIComponent(m[1] ?? '');
    return get(req, res, () => {
      const c = findCharacter(ctx.options, id);
      if (!c) return sendJson(res, 404, { error: `Character ${id} not found` });
      sendJson(res, 200, {
        ...characterListItem(c),
        description: c.description ?? '',
        firstMessage: c.greeting ?? '',
        thumbnailUrl: thumbnailUrlOf(c),
      });
    });
  }
  if (path === '/api/chats' || path === '/api/chats/') {
    return get(req, res, () => sendChats(ctx, res, url.searchParams.get('characterId')));
  }
  if ((m = path.match(/^\/api\/tts\/gens\/([^/]+)$/))) {
    const id = decodeURIComponent(m[1] ?? '');
    return get(req, res, () => {
      serveTts(ctx, res, id).catch((err: unknown) => ctx.log.error({ err: String(err) }, 'voxta-sim: serving a TTS clip failed'));
    });
  }
  return false;
}

function get(req: IncomingMessage, res: ServerResponse, handler: () => void): true {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    sendJson(res, 405, { error: `Method ${req.method ?? '?'} not allowed` });
  } else {
    handler();
  }
  return true;
}

function sendChats(ctx: SimContext, res: ServerResponse, characterId: string | null): void {
  const list = characterId
    ? ctx.chats.forCharacter(characterId)
    : ctx.chats.all().sort((a, b) => (b.lastSession ?? b.created).getTime() - (a.lastSession ?? a.created).getTime());
  const chats = list.map((c) => {
    const characters = c.characterIds.map((id) => findCharacter(ctx.options, id)).filter((x) => x !== undefined);
    return {
      id: c.id,
      title: c.title,
      created: humanizeAgo(c.created),
      createdTimestamp: c.created.toISOString(),
      lastSession: c.lastSession ? humanizeAgo(c.lastSession) : null,
      lastSessionTimestamp: c.lastSession ? c.lastSession.toISOString() : null,
      favorite: false,
      scenarioId: c.scenarioId,
      characters: characters.map((character) => ({ id: character.id, name: character.name, thumbnailUrl: thumbnailUrlOf(character) })),
    };
  });
  sendJson(res, 200, { chats });
}

function sendThumbnail(ctx: SimContext, res: ServerResponse, id: string): void {
  // Narrators are characters too: chatStarted.narrator.thumbnailUrl points here.
  const c = findParticipant(ctx.options, id);
  if (!c) return sendJson(res, 404, { error: `Character ${id} not found` });
  let png = thumbnails.get(c.id);
  if (!png) {
    png = avatarPng(c.color ?? [128, 128, 160]);
    thumbnails.set(c.id, png);
  }
  res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': png.length, 'Cache-Control': 'max-age=3600' });
  res.end(png);
}

async function serveTts(ctx: SimContext, res: ServerResponse, id: string): Promise<void> {
  const { status, delayMs, sampleRate, voice } = ctx.options.tts;
  if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  if (res.destroyed) return;
  if (status !== 200) {
    ctx.recorder.recordTtsRequest(id, status);
    sendJson(res, status, { error: `Simulated TTS failure (HTTP ${status})` });
    return;
  }
  const rendering = ctx.tts.render(id, { sampleRate, voice });
  if (!rendering) {
    ctx.recorder.recordTtsRequest(id, 404);
    sendJson(res, 404, { error: `No speech generation ${id}` });
    return;
  }
  try {
    const { wav, served } = await rendering;
    ctx.recorder.recordTtsRequest(id, 200);
    ctx.recorder.recordTts({ ...served, at: Date.now() });
    if (res.destroyed) return;
    res.writeHead(200, { 'Content-Type': 'audio/x-wav', 'Content-Length': wav.length });
    res.end(wav);
  } catch (err) {
    ctx.log.error({ id, err: errorInfo(err) }, 'speech synthesis failed');
    ctx.recorder.recordTtsRequest(id, 500);
    sendJson(res, 500, { error: `Speech synthesis failed: ${errorInfo(err).message}` });
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
