/**
 * What everybody says in the demo scene, and what the simulated Aria answers. With a real Voxta
 * server (VOXTA_URL) only the members' lines are used: the character answers for itself.
 */

export const LINES = {
  typed: 'Hi Aria! How is your evening going?',
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

export function scriptedReply(userText: string): string[] {
  const hit = ANSWERS.find(([needle]) => userText.includes(needle));
  return hit ? hit[1] : ['I am not sure what to say to that.'];
}
