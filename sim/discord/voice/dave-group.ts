/**
 * The MLS group of one bot voice session, driven the way Discord's voice server drives it.
 *
 * Participants are the bot (over the voice gateway) and the simulated members (davey sessions in
 * this process). The server never holds group keys; it only:
 * - announces its external sender (op 25) and collects key packages (the bot's op 26; members'
 *   directly);
 * - signs Add/Remove proposals for the current epoch and delivers them (op 27) to EVERY current
 *   group member (a commit references proposals, so each member must have processed them);
 * - takes the commit of one designated committer (the longest-standing member: the first commit
 *   that counts, as on Discord), ignores the others, and announces it: op 29 to existing members,
 *   op 30 (welcome) to joiners, each with a transition id;
 * - waits for the bot's op 23 TRANSITION_READY and sends op 22 EXECUTE_TRANSITION.
 * One change set is in flight at a time; further joins/leaves queue up and go in the next commit.
 *
 * When nobody is in the group yet, the first participant to be added becomes the founder: its
 * pending group (created by davey on op 25) is epoch 0 and it commits the next Adds itself. So a
 * bot joining a channel with members is welcomed by a member, and a bot alone in a channel
 * commits the Adds for members who join later: both join directions of the study.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../../../src/log.js';
import { errorInfo } from '../../../src/log.js';
import { DaveExternalSender, type ProposalBody } from './dave-external-sender.js';
import { splitCommitWelcome } from './mls-wire.js';
import type { SimMember } from './member.js';
import { VoiceOp } from './opcodes.js';

export interface DaveGroupHost {
  readonly channelId: string;
  readonly botUserId: string;
  sendBinaryToBot(op: number, payload: Buffer): void;
  sendJsonToBot(op: number, d: unknown): void;
  /** Members currently in the channel (in join order). */
  presentMembers(): SimMember[];
  /** User ids the clients were told about (op 11) plus the bot: what a member passes davey. */
  recognisedUserIds(): string[];
  protocolError(message: string): void;
}

type Change = { kind: 'add'; userId: string; keyPackage: Buffer } | { kind: 'remove'; userId: string };

interface InFlight {
  transitionId: number;
  committer: string;
  joiners: string[];
  removed: string[];
  /** Waiting for the bot's op 28 (the bot is the committer). */
  awaitingBotCommit: boolean;
  /** Waiting for the bot's op 23 for this transition. */
  awaitingBotReady: boolean;
  timer: NodeJS.Timeout;
}

export interface DaveTransitionInfo {
  transitionId: number;
  epoch: number;
  userIds: string[];
}

const IN_FLIGHT_TIMEOUT_MS = 5_000;

export class DaveGroup extends EventEmitter<{ transition: [DaveTransitionInfo]; settled: [] }> {
  readonly sender = new DaveExternalSender();
  private epoch = 0;
  /** Participants in the group (founder first), user ids. */
  private inGroup: string[] = [];
  private queue: Change[] = [];
  private inFlight: InFlight | undefined;
  private nextTransitionId = 1;
  /** Members that left but must still be removed from the group (their session gives the leaf index). */
  private readonly leaving = new Map<string, SimMember>();
  private started = false;
  private earlyBotKeyPackage: Buffer | undefined;
  private stopped = false;

  constructor(private readonly host: DaveGroupHost, private readonly log: Logger) {
    super();
  }

  get currentEpoch(): number {
    return this.epoch;
  }

  get groupUserIds(): string[] {
    return [...this.inGroup];
  }

  /** After SESSION_DESCRIPTION (v1): op 25 to the bot; members present join the group. */
  start(): void {
    this.started = true;
    this.host.sendBinaryToBot(VoiceOp.DaveMlsExternalSender, this.sender.packagePayload());
    for (const m of this.host.presentMembers()) this.queueMemberAdd(m);
    if (this.earlyBotKeyPackage) {
      const kp = this.earlyBotKeyPackage;
      this.earlyBotKeyPackage = undefined;
      this.onBotKeyPackage(kp);
    }
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    if (this.inFlight) clearTimeout(this.inFlight.timer);
    this.inFlight = undefined;
    for (const m of this.host.presentMembers()) m.leaveDaveGroup();
    for (const m of this.leaving.values()) m.leaveDaveGroup();
    this.leaving.clear();
  }

  /** True when the bot and every present member share the group and nothing is pending. */
  isSettled(): boolean {
    if (this.inFlight || this.queue.length > 0) return false;
    if (!this.inGroup.includes(this.host.botUserId)) return false;
    return this.host.presentMembers().every((m) => this.inGroup.includes(m.userId));
  }

  // ---- inputs ----

  /** op 26 from the bot: its key package (first one, or a new one after it re-initialised). */
  onBotKeyPackage(keyPackage: Buffer): void {
    if (!this.started) {
      this.earlyBotKeyPackage = keyPackage;
      return;
    }
    const bot = this.host.botUserId;
    if (this.inGroup.includes(bot) || this.inFlight?.joiners.includes(bot)) {
      // The bot dropped its group state (op 31 / failed transition): rebuild the group from scratch.
      this.log.info({ epoch: this.epoch }, 'bot sent a new key package while in the group: re-forming the MLS group');
      this.reform(keyPackage);
      return;
    }
    this.queue = this.queue.filter((c) => !(c.kind === 'add' && c.userId === bot));
    this.queue.push({ kind: 'add', userId: bot, keyPackage });
    this.pump();
  }

  /** op 28 from the bot: commit ‖ optional welcome. */
  onBotCommitWelcome(payload: Buffer): void {
    const f = this.inFlight;
    if (!f?.awaitingBotCommit) {
      this.log.debug('bot commit ignored: another member\'s commit was chosen for this epoch');
      return;
    }
    let split: { commit: Buffer; welcome: Buffer | undefined };
    try {
      split = splitCommitWelcome(payload);
    } catch (err) {
      this.host.protocolError(`op 28 from the bot could not be parsed: ${errorInfo(err).message}`);
      return;
    }
    if (f.joiners.length > 0 && !split.welcome) {
      this.host.protocolError('op 28 from the bot adds members but carries no welcome');
      return;
    }
    f.awaitingBotCommit = false;
    this.announce(f, split.commit, split.welcome);
  }

  /** op 23 from the bot. */
  onBotTransitionReady(transitionId: number): void {
    const f = this.inFlight;
    if (f && f.awaitingBotReady && f.transitionId === transitionId) this.execute(f);
  }

  /** op 31 from the bot: it could not process our commit/welcome; it re-initialises and sends op 26. */
  onBotInvalidCommitWelcome(transitionId: number): void {
    this.log.warn({ transitionId }, 'bot reported an invalid commit/welcome (op 31)');
  }

  memberJoined(member: SimMember): void {
    if (!this.started) return; // start() adds everyone present
    this.queueMemberAdd(member);
    this.pump();
  }

  memberLeft(member: SimMember): void {
    const queued = this.queue.findIndex((c) => c.kind === 'add' && c.userId === member.userId);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      member.leaveDaveGroup();
      return;
    }
    if (this.inGroup.includes(member.userId) || this.inFlight?.joiners.includes(member.userId)) {
      this.leaving.set(member.userId, member);
      this.queue.push({ kind: 'remove', userId: member.userId });
      this.pump();
    } else {
      member.leaveDaveGroup();
    }
  }

  /**
   * Fault injection: an Add proposal for a user the bot was never told about (op 11), sent to the
   * bot alone (the stranger's davey session only provides a genuine key package).
   */
  proposeUnknownUser(stranger: SimMember): void {
    const keyPackage = stranger.joinDaveGroup(this.host.channelId, this.sender.packagePayload());
    const payload = this.sender.proposalsPayload(this.host.channelId, this.epoch, [{ kind: 'add', keyPackage }]);
    this.host.sendBinaryToBot(VoiceOp.DaveMlsProposals, payload);
  }

  // ---- machinery ----

  private queueMemberAdd(member: SimMember): void {
    try {
      const keyPackage = member.joinDaveGroup(this.host.channelId, this.sender.packagePayload());
      this.queue.push({ kind: 'add', userId: member.userId, keyPackage });
    } catch (err) {
      this.host.protocolError(`member ${member.userId} could not start a DAVE session: ${errorInfo(err).message}`);
    }
  }

  private reform(botKeyPackage: Buffer): void {
    if (this.inFlight) clearTimeout(this.inFlight.timer);
    this.inFlight = undefined;
    this.epoch = 0;
    this.inGroup = [];
    this.queue = [];
    for (const m of this.leaving.values()) m.leaveDaveGroup();
    this.leaving.clear();
    for (const m of this.host.presentMembers()) this.queueMemberAdd(m);
    this.queue.push({ kind: 'add', userId: this.host.botUserId, keyPackage: botKeyPackage });
    this.pump();
  }

  private memberSession(userId: string): SimMember | undefined {
    return this.host.presentMembers().find((m) => m.userId === userId) ?? this.leaving.get(userId);
  }

  private pump(): void {
    if (this.stopped || this.inFlight || this.queue.length === 0) {
      this.checkSettled();
      return;
    }
    if (this.inGroup.length === 0) {
      const first = this.queue.findIndex((c) => c.kind === 'add');
      if (first < 0) {
        this.queue = [];
        return;
      }
      const founder = this.queue.splice(first, 1)[0]!;
      this.inGroup.push(founder.userId);
      this.epoch = 0;
      this.log.debug({ founder: founder.userId }, 'MLS group founder (pending group, epoch 0)');
      if (this.queue.length === 0) {
        this.checkSettled();
        return;
      }
    }
    const batch = this.queue.splice(0);
    const bodies: ProposalBody[] = [];
    const joiners: string[] = [];
    const removed: string[] = [];
    for (const change of batch) {
      if (change.kind === 'add') {
        bodies.push({ kind: 'add', keyPackage: change.keyPackage });
        joiners.push(change.userId);
      } else {
        const leaf = this.memberSession(change.userId)?.dave?.ownLeafIndex;
        if (leaf === null || leaf === undefined || !this.inGroup.includes(change.userId)) {
          this.leaving.get(change.userId)?.leaveDaveGroup();
          this.leaving.delete(change.userId);
          continue;
        }
        bodies.push({ kind: 'remove', leafIndex: leaf });
        removed.push(change.userId);
      }
    }
    const remaining = this.inGroup.filter((u) => !removed.includes(u));
    const committer = remaining[0];
    if (bodies.length === 0) return this.pump();
    if (!committer) {
      // Everyone in the group leaves: the group simply ends; joiners found a new one.
      for (const u of removed) this.dropLeaver(u);
      this.inGroup = [];
      this.queue = batch.filter((c) => c.kind === 'add');
      return this.pump();
    }

    const payload = this.sender.proposalsPayload(this.host.channelId, this.epoch, bodies);
    const transitionId = this.allocateTransitionId();
    const f: InFlight = {
      transitionId,
      committer,
      joiners,
      removed,
      awaitingBotCommit: committer === this.host.botUserId,
      awaitingBotReady: false,
      timer: setTimeout(() => this.onInFlightTimeout(f), IN_FLIGHT_TIMEOUT_MS),
    };
    f.timer.unref();
    this.inFlight = f;
    this.log.debug({ transitionId, epoch: this.epoch, committer, joiners, removed }, 'MLS proposals');

    let memberCommit: { commit: Buffer; welcome: Buffer | undefined } | undefined;
    const recognised = this.host.recognisedUserIds();
    for (const userId of remaining) {
      if (userId === this.host.botUserId) {
        this.host.sendBinaryToBot(VoiceOp.DaveMlsProposals, payload);
        continue;
      }
      const member = this.memberSession(userId);
      try {
        const result = member!.dave!.processProposals(payload[0]!, payload.subarray(1), recognised);
        if (userId === committer) {
          if (!result.commit) throw new Error('davey produced no commit');
          memberCommit = { commit: result.commit, welcome: result.welcome };
        }
      } catch (err) {
        this.host.protocolError(`member ${userId} failed to process proposals: ${errorInfo(err).message}`);
      }
    }
    if (!f.awaitingBotCommit) {
      if (!memberCommit) {
        clearTimeout(f.timer);
        this.inFlight = undefined;
        return;
      }
      this.announce(f, memberCommit.commit, memberCommit.welcome);
    }
  }

  /** Delivers the chosen commit to the group and the welcome to the joiners. */
  private announce(f: InFlight, commit: Buffer, welcome: Buffer | undefined): void {
    const bot = this.host.botUserId;
    const tid = Buffer.alloc(2);
    tid.writeUInt16BE(f.transitionId, 0);
    for (const userId of this.inGroup) {
      if (f.removed.includes(userId)) continue;
      if (userId === bot) {
        this.host.sendBinaryToBot(VoiceOp.DaveMlsAnnounceCommitTransition, Buffer.concat([tid, commit]));
        f.awaitingBotReady = true;
        continue;
      }
      try {
        this.memberSession(userId)!.dave!.processCommit(commit);
      } catch (err) {
        this.host.protocolError(`member ${userId} failed to process the commit: ${errorInfo(err).message}`);
      }
    }
    for (const userId of f.joiners) {
      if (userId === bot) {
        this.host.sendBinaryToBot(VoiceOp.DaveMlsWelcome, Buffer.concat([tid, welcome!]));
        f.awaitingBotReady = true;
        continue;
      }
      try {
        this.memberSession(userId)!.dave!.processWelcome(welcome!);
      } catch (err) {
        this.host.protocolError(`member ${userId} failed to process the welcome: ${errorInfo(err).message}`);
      }
    }
    this.epoch++;
    this.inGroup = [...this.inGroup.filter((u) => !f.removed.includes(u)), ...f.joiners];
    for (const u of f.removed) this.dropLeaver(u);
    if (!f.awaitingBotReady) this.execute(f);
  }

  private execute(f: InFlight): void {
    clearTimeout(f.timer);
    this.inFlight = undefined;
    if (f.awaitingBotReady) this.host.sendJsonToBot(VoiceOp.DaveExecuteTransition, { transition_id: f.transitionId });
    this.emit('transition', { transitionId: f.transitionId, epoch: this.epoch, userIds: [...this.inGroup] });
    this.pump();
  }

  private dropLeaver(userId: string): void {
    const m = this.leaving.get(userId);
    if (m) {
      m.leaveDaveGroup();
      this.leaving.delete(userId);
    }
  }

  private onInFlightTimeout(f: InFlight): void {
    if (this.inFlight !== f) return;
    this.host.protocolError(
      `MLS transition ${f.transitionId} stalled: ${f.awaitingBotCommit ? 'no op 28 commit' : 'no op 23 transition ready'} from the bot within ${IN_FLIGHT_TIMEOUT_MS} ms`,
    );
    this.inFlight = undefined;
    this.pump();
  }

  private allocateTransitionId(): number {
    const id = this.nextTransitionId;
    this.nextTransitionId = id >= 0xffff ? 1 : id + 1;
    return id;
  }

  private checkSettled(): void {
    if (this.isSettled()) this.emit('settled');
  }
}
