/** `/status`: what runs in this server, how Voxta is doing, and how fast replies come. */
import { SlashCommandBuilder, type APIEmbed } from 'discord.js';
import { castLines, postingNotice } from './embeds.js';
import type { Command } from './types.js';

const STATE_WORDS: Record<string, string> = {
  idle: 'no chat running',
  starting: 'starting…',
  active: 'running',
  reconnecting: 'reconnecting to Voxta…',
  stopping: 'stopping…',
};

export const status: Command = {
  controlsSession: false,
  data: new SlashCommandBuilder().setName('status').setDescription('Show the chat, connections and reply times in this server').setDMPermission(false).toJSON(),

  async execute(ctx) {
    const { core } = ctx;
    const session = core.existingSession(ctx.guildId);
    const st = session?.status();
    const rec = st?.record ?? core.session(ctx.guildId).record;
    const state = st?.state ?? 'idle';
    const fields: NonNullable<APIEmbed['fields']> = [];
    fields.push({ name: 'Session', value: STATE_WORDS[state] ?? state, inline: true });
    const cast = st?.cast ?? (rec?.cast && rec.cast.length > 1 ? rec.cast : undefined);
    if (rec && cast && (cast.length > 1 || rec.scenario)) {
      if (rec.scenario) fields.push({ name: 'Scenario', value: rec.scenario.name || rec.scenario.id, inline: true });
      fields.push({ name: 'Cast', value: castLines(cast), inline: true });
    } else if (rec) {
      fields.push({ name: 'Character', value: rec.characterName, inline: true });
    }
    if (rec) {
      fields.push({ name: 'Chat', value: rec.chatId ? `\`${rec.chatId}\`` : 'none yet', inline: false });
      fields.push({ name: 'Text channel', value: `<#${rec.textChannelId}>`, inline: true });
    }
    fields.push({
      name: 'Voice',
      value: st?.voice ? `<#${st.voice.channelId}> (${st.voice.state})` : 'not in voice',
      inline: true,
    });
    const vs = session?.voiceStats();
    if (st?.voice && vs) {
      const parts = [`${vs.utterances ?? 0} utterances heard`, `${vs.chunksPlayed ?? 0} reply clips played`];
      if ((vs.downlinkLatencySamples ?? 0) > 0) parts.push(`speech starts ${fmtMs(vs.downlinkLatencyP50Ms)} after the text (median)`);
      if ((vs.decodeErrors ?? 0) > 0) parts.push(`${vs.decodeErrors} undecodable packets`);
      fields.push({ name: 'Voice figures', value: parts.join(', '), inline: false });
    }
    const voxta = st && st.voxtaState !== 'none' ? st.voxtaState : (await core.voxtaReachable()) ? 'reachable (no chat open)' : 'not reachable';
    fields.push({ name: 'Voxta connection', value: voxta, inline: true });
    const lat = st?.latency;
    fields.push({
      name: 'Reply time (to first words)',
      value: lat && lat.samples > 0 ? `median ${fmtMs(lat.p50)}, 95th percentile ${fmtMs(lat.p95)} (last ${lat.samples} turns)` : 'no turns yet',
      inline: false,
    });
    if (st && st.pictures !== 'off' && st.state !== 'idle') {
      const words: Record<string, string> = {
        present: 'shown to the character (Voxta has a vision service)',
        unknown: 'offered to the character (Voxta did not say whether it has a vision service)',
        absent: 'not shown: Voxta has no vision service (enable one in Voxta to let the character see pictures)',
      };
      fields.push({ name: 'Pictures', value: words[st.pictures] ?? st.pictures, inline: false });
    }
    if (st?.storeProblem) {
      fields.push({
        name: 'Database',
        value: `Saving this server's chat state failed (${st.storeProblem.message.slice(0, 200)}); I keep retrying. Check the disk and DATA_DIR.`,
        inline: false,
      });
    }
    if (st?.postingProblem) fields.push({ name: 'Replies', value: postingNotice(st.postingProblem), inline: false });
    if (st && st.pendingMessages > 0) fields.push({ name: 'Waiting to be delivered', value: `${st.pendingMessages} message(s)`, inline: true });
    fields.push({
      name: 'Message Content intent',
      value: core.messageContentAvailable
        ? 'available: messages in the bound channel reach the character'
        : 'OFF: text bridging is unavailable. Enable “Message Content Intent” under Bot → Privileged Gateway Intents in the Discord Developer Portal, then restart the bot.',
      inline: false,
    });
    fields.push({
      name: 'Capacity',
      value: `${core.admission.chatCount} of ${core.admission.maxChats} chats, ${core.admission.voiceCount} of ${core.admission.maxVoice} voice channels in use`,
      inline: false,
    });
    if (session?.mirrorTranscripts() === false) fields.push({ name: 'Voice transcripts', value: 'not mirrored to text', inline: true });
    await ctx.reply({ ephemeral: true, embeds: [{ title: 'Voxta bot status', color: 0x7c5cff, fields }] });
  },
};

function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
