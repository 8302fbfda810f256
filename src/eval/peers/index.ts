// Packaged peer models for `evaluate --peer`: each is loaded by dynamic import, so the product never loads them
// (face-api and faceplugin are dev dependencies) unless an evaluation asks for one.
import type { CropClassifier } from '../evaluate-set.js';

export const PEERS = ['faceapi', 'human', 'fr_expression'] as const;
export type PeerName = (typeof PEERS)[number];

export async function loadPeer(name: PeerName): Promise<CropClassifier> {
  switch (name) {
    case 'faceapi':
      return (await import('./faceapi.js')).loadFaceApiPeer();
    case 'human':
      return (await import('./human.js')).loadHumanPeer();
    case 'fr_expression':
      return (await import('./fr-expression.js')).loadFrExpressionPeer();
  }
}
