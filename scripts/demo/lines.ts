/**
 * What everybody says in the demo scene, and what the simulated Aria (and Captain Holt, when he
 * joins) answer. With a real Voxta server (VOXTA_URL) only the members' lines are used: the
 * characters answer for themselves.
 */
import type { ReplyContext, SimReply } from '../../sim/voxta/index.js';

export const LINES = {
  typed: 'Hi Aria! How is your evening going?',
  together: 'Welcome aboard, Captain! What do you two make of the comet tonight?',
  spoken: 'Can you hear me, Aria?',
  overlapAlice: 'What should we play tonight?',
  overlapBob: 'How about a space adventure, with aliens and a lost moon?',
  story: 'Tell us a story about the stars.',
  bargeIn: 'Wait, what was the comet called?',
  goOn: 'Go on with the story, please!',
} as const;

/** The simulated character's answers, matched on the (possibly "Name: "-attributed) user text. */
const ANSWERS: Array<[needle: string, sentences: string[]]> = [
  [LINES.typed, ['Hi Alice, lovely to see you!', 'My evening is going great.']],
  [LINES.spoken, ['Loud and clear, Alice.', 'Your voice comes through nicely.']],
  [LINES.overlapAlice, ['Hmm, let me think about that.']],
  [LINES.overlapBob, ['A space adventure it is, Bob!']],
  [
    LINES.story,
    [
      'Once upon a time, far beyond the last lighthouse of the galaxy, a little comet woke up.',
      'It had never seen a planet before, and it wanted to visit every single one of them.',
    ],
  ],
  [LINES.bargeIn, ['Her name was Pip.']],
  [
    LINES.goOn,
    [
      'Pip flew past seven moons, a sleepy gas giant and a ring of glittering ice.',
      'Then she met an old satellite who knew every star by its first name.',
    ],
  ],
];

/** When the group line is said, every character of the cast answers it, one after another. */
const GROUP_ANSWERS: Record<string, string[]> = {
  Aria: ['Oh, it is beautiful!', 'I could watch it all night.'],
  'Captain Holt': ['Steady as she goes.', 'We keep our distance and enjoy the view.'],
};

export function scriptedReply(userText: string, ctx?: Pick<ReplyContext, 'characters'>): string[] | SimReply[] {
  if (userText.includes(LINES.together) && ctx && ctx.characters.length > 1) {
    return ctx.characters.map((c) => ({ senderId: c.id, text: GROUP_ANSWERS[c.name] ?? [`${c.name} agrees.`] }));
  }
  const hit = ANSWERS.find(([needle]) => userText.includes(needle));
  return hit ? hit[1] : ['I am not sure what to say to that.'];
}
